#!/usr/bin/env bash
# A real three-node Apache Kafka cluster on 127.0.0.1 (KRaft: each node a combined broker + controller, three
# processes with their own ports, data and logs), for failover tests. Each node is deploy/local/kafka.sh with
# KAFKA_NODE=N; see kafka/cluster.properties for replication (3) and min.insync.replicas (2).
#
# usage: deploy/local/kafka-cluster.sh COMMAND [NODE]
#   start [N]        start every node (or node N) that is not running, and wait until all answer
#   stop [N]         graceful stop of every node (or node N)
#   kill N           SIGKILL node N at once (a crash); `start N` brings it back with its data
#   status           exit 0 if all three nodes answer, 1 otherwise (one line per node)
#   bootstrap        print the bootstrap servers: 127.0.0.1:9111,127.0.0.1:9112,127.0.0.1:9113
#   reset            stop every node and delete the cluster's data and logs (the jars are kept)
#
# State: ${EMITTER_LOCAL_DIR:-<repo>/.local}/kafka-cluster/{cluster.env,node1,node2,node3}
# Memory: each node's heap is KAFKA_HEAP_OPTS (default here -Xms256m -Xmx384m).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KAFKA_SH=$SCRIPT_DIR/kafka.sh
NODES=(1 2 3)
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx384m}
export KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
unset KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_SECURITY

log() { printf 'kafka-cluster.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
node() { KAFKA_NODE=$1 "$KAFKA_SH" "${@:2}"; }

pick() { # [N] -> the nodes a command acts on
  if [[ $# -eq 0 || -z ${1:-} ]]; then echo "${NODES[@]}"; return; fi
  [[ $1 =~ ^[123]$ ]] || die "node must be 1, 2 or 3, got '$1'"
  echo "$1"
}

cmd_start() {
  local n pids=() failed=0
  "$KAFKA_SH" classpath >/dev/null  # fetch the jars once, before the nodes start side by side
  # A node of a three-voter quorum answers only once a majority runs: start them together.
  for n in $(pick "${1:-}"); do
    node "$n" start &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  [[ $failed -eq 0 ]] || die "a node did not start (logs: .local/kafka-cluster/nodeN/logs)"
  log "cluster ready on $(bootstrap)"
}

bootstrap() { echo "127.0.0.1:9111,127.0.0.1:9112,127.0.0.1:9113"; }

cmd_status() {
  local n rc=0
  for n in "${NODES[@]}"; do node "$n" status || rc=1; done
  return $rc
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case "$cmd" in
  start) cmd_start "${1:-}" ;;
  stop)
    # side by side: stopped one at a time, the last node waits out its stop timeout for a quorum that is gone
    pids=()
    for n in $(pick "${1:-}"); do node "$n" stop & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p"; done
    ;;
  kill) [[ $# -eq 1 ]] || die "usage: $0 kill N"; node "$(pick "$1")" kill ;;
  status) cmd_status ;;
  bootstrap) bootstrap ;;
  reset)
    for n in "${NODES[@]}"; do node "$n" reset; done
    rm -f "${EMITTER_LOCAL_DIR:-$SCRIPT_DIR/../../.local}/kafka-cluster/cluster.env"
    ;;
  -h | --help | help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2 ;;
  *) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac
