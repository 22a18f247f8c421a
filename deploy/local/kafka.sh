#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft, combined broker + controller) on 127.0.0.1,
# run from Maven Central jars, for development, tests and CI. Needs Java 17+ and Maven.
#
# usage: deploy/local/kafka.sh COMMAND
#   start              fetch the jars (once), format the storage (once), start the broker in the
#                      background and wait until it answers; a no-op if it already runs
#   stop               graceful stop (SIGTERM, then SIGKILL after $KAFKA_STOP_TIMEOUT s); no-op if stopped
#   kill               SIGKILL the broker at once (simulated crash); data is kept, `start` recovers it
#   status             exit 0 if the broker runs and answers, 1 if it runs but does not answer, 3 if stopped
#   classpath          print the classpath (libs/*) of the broker and its tools
#   run CLASS [ARGS]   run a Java class on that classpath, logging warnings to stderr, e.g.
#                      run org.apache.kafka.tools.ProducerPerformance --topic t --num-records 1000 ...
#   logs [-f|--path]   show the last lines of the broker log (-f: follow; --path: print its path)
#   reset              stop the broker and delete its data and logs (the jars are kept)
#   paths              print the bootstrap server, state dir and (sasl_ssl) the CA file and users file
#
# State: ${EMITTER_LOCAL_DIR:-<repo>/.local}/kafka/{libs,data,logs,kafka.pid,server.properties}
# Settings (environment):
#   KAFKA_SECURITY (plaintext)      plaintext: one PLAINTEXT listener. sasl_ssl: a second, secured broker with its
#                                   own state (<local>/kafka-sasl) and ports (9094, 9095): SASL_SSL only, TLS with
#                                   a local CA (deploy/local/tls.sh), SCRAM-SHA-512 users admin, emitter and
#                                   stranger (random passwords in <state>/secrets/users.env), ACLs: emitter owns
#                                   topics, groups and transactional ids prefixed "sec-"; see kafka/sasl_ssl.properties
#   KAFKA_NODE                      1, 2 or 3: one node of the local three-node cluster (use deploy/local/kafka-cluster.sh,
#                                   which starts all three): state <local>/kafka-cluster/nodeN, client port 9110+N,
#                                   controller port 9120+N; replication 3, min.insync.replicas 2 (kafka/cluster.properties)
#   KAFKA_PORT (9092; sasl_ssl 9094)            client listener, bootstrap server 127.0.0.1:$KAFKA_PORT
#   KAFKA_CONTROLLER_PORT (9093; sasl_ssl 9095) KRaft controller listener
#   KAFKA_HEAP_OPTS (-Xms512m -Xmx512m)   broker heap;  KAFKA_JVM_OPTS: more broker JVM options
#   KAFKA_TOOL_OPTS (-Xmx512m)      JVM options for `run`
#   KAFKA_START_TIMEOUT (60) / KAFKA_STOP_TIMEOUT (30)   seconds
#   KAFKA_MVN_ARGS                  extra Maven arguments for the jar fetch (e.g. -o, -Dmaven.repo.local=...)
#   JAVA_HOME                       Java to use (else `java` on PATH)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)
CONF_DIR=$SCRIPT_DIR/kafka
LOCAL_DIR=${EMITTER_LOCAL_DIR:-$REPO_DIR/.local}
[[ $LOCAL_DIR == /* ]] || LOCAL_DIR=$PWD/$LOCAL_DIR
KAFKA_SECURITY=${KAFKA_SECURITY:-plaintext}
KAFKA_NODE=${KAFKA_NODE:-}
case $KAFKA_SECURITY in
  plaintext) STATE_DIR=$LOCAL_DIR/kafka; DEFAULT_PORT=9092; DEFAULT_CONTROLLER_PORT=9093 ;;
  sasl_ssl) STATE_DIR=$LOCAL_DIR/kafka-sasl; DEFAULT_PORT=9094; DEFAULT_CONTROLLER_PORT=9095 ;;
  *) printf "kafka.sh: error: KAFKA_SECURITY must be plaintext or sasl_ssl, got '%s'\n" "$KAFKA_SECURITY" >&2; exit 1 ;;
esac
CLUSTER_DIR=$LOCAL_DIR/kafka-cluster
CLUSTER_ENV=$CLUSTER_DIR/cluster.env
case $KAFKA_NODE in
  "") ;;
  1 | 2 | 3)
    [[ $KAFKA_SECURITY == plaintext ]] || { echo "kafka.sh: error: KAFKA_NODE is for the plaintext cluster" >&2; exit 1; }
    STATE_DIR=$CLUSTER_DIR/node$KAFKA_NODE; DEFAULT_PORT=$((9110 + KAFKA_NODE)); DEFAULT_CONTROLLER_PORT=$((9120 + KAFKA_NODE)) ;;
  *) printf "kafka.sh: error: KAFKA_NODE must be 1, 2 or 3, got '%s'\n" "$KAFKA_NODE" >&2; exit 1 ;;
esac
CONTROLLERS=127.0.0.1:9121,127.0.0.1:9122,127.0.0.1:9123
LIBS_DIR=$LOCAL_DIR/kafka/libs  # the jars are shared by both brokers
SECRETS_DIR=$STATE_DIR/secrets
TLS_DIR=$SECRETS_DIR/tls
USERS_FILE=$SECRETS_DIR/users.env
ACL_MARKER=$STATE_DIR/acls.done
DATA_DIR=$STATE_DIR/data
LOG_DIR=$STATE_DIR/logs
PID_FILE=$STATE_DIR/kafka.pid
CONFIG=$STATE_DIR/server.properties
LIBS_MARKER=$LIBS_DIR/.complete
FORMAT_MARKER=$STATE_DIR/formatted.env
SERVER_LOG=$LOG_DIR/server.log
CONSOLE_LOG=$LOG_DIR/kafka.out

KAFKA_PORT=${KAFKA_PORT:-$DEFAULT_PORT}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$DEFAULT_CONTROLLER_PORT}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms512m -Xmx512m}
KAFKA_JVM_OPTS=${KAFKA_JVM_OPTS:-}
KAFKA_TOOL_OPTS=${KAFKA_TOOL_OPTS:--Xmx512m}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
KAFKA_MVN_ARGS=${KAFKA_MVN_ARGS:-}
BOOTSTRAP=127.0.0.1:$KAFKA_PORT

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA=$JAVA_HOME/bin/java; else JAVA=java; fi

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
}

for v in KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_START_TIMEOUT KAFKA_STOP_TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number, got '${!v}'"
done
[[ $KAFKA_PORT != "$KAFKA_CONTROLLER_PORT" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"

check_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (install a JDK 17+ or set JAVA_HOME)"
  local ver major
  ver=$("$JAVA" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
  major=${ver%%.*}
  [[ $major == 1 ]] && major=$(cut -d. -f2 <<<"$ver")
  [[ $major =~ ^[0-9]+$ && $major -ge 17 ]] || die "Kafka 4 needs Java 17+, found '$ver' ($JAVA)"
}

# Serialise start/stop/kill/reset of one state dir (e.g. parallel test processes).
take_lock() {
  mkdir -p "$STATE_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$STATE_DIR/.lock"
    flock -w $((KAFKA_START_TIMEOUT + KAFKA_STOP_TIMEOUT + 600)) 9 || die "could not lock $STATE_DIR/.lock"
  fi
}

pom_hash() { sha256sum "$CONF_DIR/pom.xml" | cut -d' ' -f1; }

libs_complete() { [[ -f $LIBS_MARKER && $(cat "$LIBS_MARKER") == "$(pom_hash)" ]]; }

# Copy the runtime closure of kafka/pom.xml into libs/ (atomically: a temp dir renamed on success).
fetch_libs() {
  libs_complete && return 0
  if [[ -f $LIBS_MARKER ]] && is_running; then
    log "warning: $CONF_DIR/pom.xml changed, but the broker is running; keeping the old jars (restart to refetch)"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn (Maven) not found: it is needed once to fetch the Kafka jars"
  local tmp=$STATE_DIR/libs.tmp.$$ mvn_log=$STATE_DIR/mvn.log start=$SECONDS n
  rm -rf "$tmp"
  log "fetching Kafka jars into $LIBS_DIR (once) ..."
  # shellcheck disable=SC2086  # KAFKA_MVN_ARGS is a list of words
  if ! mvn -B -q -Dstyle.color=never $KAFKA_MVN_ARGS -f "$CONF_DIR/pom.xml" \
      dependency:copy-dependencies -DoutputDirectory="$tmp" -DincludeScope=runtime >"$mvn_log" 2>&1; then
    tail -n 40 "$mvn_log" >&2 || true
    rm -rf "$tmp"
    die "Maven could not fetch the Kafka jars (full output: $mvn_log)"
  fi
  n=$(find "$tmp" -maxdepth 1 -name 'slf4j-api-*.jar' | wc -l)
  [[ $n -eq 1 ]] || { rm -rf "$tmp"; die "expected exactly one slf4j-api jar, found $n: fix $CONF_DIR/pom.xml"; }
  for j in 'kafka_2.13-*.jar' 'kafka-tools-[0-9]*.jar' 'log4j-slf4j2-impl-*.jar' 'log4j-core-*.jar'; do
    [[ -n $(find "$tmp" -maxdepth 1 -name "$j" -print -quit) ]] || { rm -rf "$tmp"; die "$j missing after the fetch"; }
  done
  pom_hash >"$tmp/.complete"
  rm -rf "$LIBS_DIR"
  mv "$tmp" "$LIBS_DIR"
  log "fetched $(find "$LIBS_DIR" -maxdepth 1 -name '*.jar' | wc -l) jars in $((SECONDS - start))s"
}

# Jars for classpath/run: fetch them if missing (takes the lock only when a fetch is needed).
ensure_libs() {
  libs_complete && return 0
  if [[ -f $LIBS_MARKER ]] && is_running; then fetch_libs; return 0; fi
  check_java
  take_lock
  fetch_libs
}

render_config() {
  local esc=${DATA_DIR//\\/\\\\}
  esc=${esc//&/\\&}
  esc=${esc//|/\\|}
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
      -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
      -e "s|@LOG_DIRS@|$esc|g" "$CONF_DIR/server.properties" >"$CONFIG.tmp"
  if [[ $KAFKA_SECURITY == sasl_ssl ]]; then
    local tls=${TLS_DIR//\\/\\\\}
    tls=${tls//&/\\&}
    tls=${tls//|/\\|}
    # shellcheck disable=SC1090
    source "$USERS_FILE"
    sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
        -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@TLS_DIR@|$tls|g" \
        -e "s|@STORE_PASSWORD@|$(cat "$TLS_DIR/store.pass")|g" \
        -e "s|@ADMIN_PASSWORD@|$KAFKA_ADMIN_PASSWORD|g" "$CONF_DIR/sasl_ssl.properties" >>"$CONFIG.tmp"
  fi
  if [[ -n $KAFKA_NODE ]]; then
    sed -e "s|@NODE_ID@|$KAFKA_NODE|g" -e "s|@CONTROLLERS@|$CONTROLLERS|g" "$CONF_DIR/cluster.properties" >>"$CONFIG.tmp"
  fi
  chmod 600 "$CONFIG.tmp"
  mv "$CONFIG.tmp" "$CONFIG"
}

# The cluster's id and each node's metadata directory id, made once and shared by the three nodes' formats.
cluster_ids() {
  mkdir -p "$CLUSTER_DIR"
  exec 8>"$CLUSTER_DIR/.ids.lock"  # the three nodes are formatted side by side: one of them makes the ids
  command -v flock >/dev/null 2>&1 && flock -w 120 8
  if [[ ! -s $CLUSTER_ENV ]]; then
    local n ids=""
    for n in CLUSTER_ID DIR_1 DIR_2 DIR_3; do
      ids+="$n=$(java_tool kafka.tools.StorageTool random-uuid 2>>"$LOG_DIR/format.log" | tr -d '[:space:]')"$'\n'
    done
    printf '%s' "$ids" >"$CLUSTER_ENV.tmp.$$"
    mv "$CLUSTER_ENV.tmp.$$" "$CLUSTER_ENV"
  fi
  exec 8>&-
  # shellcheck disable=SC1090
  source "$CLUSTER_ENV"
}

# sasl_ssl: TLS material, random SCRAM passwords and the admin's client config, made once.
make_secrets() {
  [[ $KAFKA_SECURITY == sasl_ssl ]] || return 0
  command -v openssl >/dev/null 2>&1 || die "openssl not found: it makes the TLS certificates of the secured broker"
  mkdir -p "$SECRETS_DIR"
  chmod 700 "$SECRETS_DIR"
  "$SCRIPT_DIR/tls.sh" "$TLS_DIR" >/dev/null || die "could not make the TLS material in $TLS_DIR"
  if [[ ! -s $USERS_FILE ]]; then
    local u
    {
      for u in ADMIN EMITTER STRANGER; do printf 'KAFKA_%s_PASSWORD=%s\n' "$u" "$(openssl rand -hex 16)"; done
    } >"$USERS_FILE.tmp"
    chmod 600 "$USERS_FILE.tmp"
    mv "$USERS_FILE.tmp" "$USERS_FILE"
    rm -rf "$DATA_DIR"  # the users are made when the storage is formatted
  fi
  # shellcheck disable=SC1090
  source "$USERS_FILE"
  (
    umask 077
    cat >"$SECRETS_DIR/admin.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$KAFKA_ADMIN_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
EOF
  )
}

# sasl_ssl: the emitter user owns everything prefixed "sec-"; the stranger gets nothing. Set once per storage.
apply_acls() {
  [[ $KAFKA_SECURITY == sasl_ssl && ! -f $ACL_MARKER ]] || return 0
  local r out
  for r in --topic --group --transactional-id; do
    if ! out=$(java_tool org.apache.kafka.tools.AclCommand --bootstrap-server "$BOOTSTRAP" \
        --command-config "$SECRETS_DIR/admin.properties" --add --allow-principal User:emitter --operation All \
        "$r" sec- --resource-pattern-type prefixed 2>&1); then
      printf '%s\n' "$out" | tail -n 20 >&2
      die "setting the ACLs failed"
    fi
  done
  touch "$ACL_MARKER"
  log "ACLs set: User:emitter may do everything on topics, groups and transactional ids prefixed 'sec-'"
}

java_tool() { # CLASS ARGS... with the tools' log4j config
  # shellcheck disable=SC2086
  "$JAVA" $KAFKA_TOOL_OPTS -Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.properties" \
    -cp "$LIBS_DIR/*" "$@" 9>&-
}

# KRaft storage: formatted once per data dir (`format --standalone` with a random cluster id).
format_storage() {
  # (Changing KAFKA_CONTROLLER_PORT later is fine: the single voter updates its endpoint on election.)
  [[ -f $DATA_DIR/meta.properties ]] && return 0
  local cluster_id out quorum=(--standalone)
  rm -rf "$DATA_DIR"
  mkdir -p "$DATA_DIR"
  if [[ -n $KAFKA_NODE ]]; then
    cluster_ids
    cluster_id=$CLUSTER_ID
    quorum=(--initial-controllers "1@127.0.0.1:9121:$DIR_1,2@127.0.0.1:9122:$DIR_2,3@127.0.0.1:9123:$DIR_3")
    local own=DIR_$KAFKA_NODE
    [[ -n ${!own} ]] || die "no directory id for node $KAFKA_NODE in $CLUSTER_ENV"
  else
    cluster_id=$(java_tool kafka.tools.StorageTool random-uuid 2>>"$LOG_DIR/format.log") \
      || { tail -n 20 "$LOG_DIR/format.log" >&2; die "StorageTool random-uuid failed"; }
  fi
  cluster_id=$(tr -d '[:space:]' <<<"$cluster_id")
  [[ -n $cluster_id ]] || die "StorageTool random-uuid printed no cluster id"
  local scram=()
  if [[ $KAFKA_SECURITY == sasl_ssl ]]; then
    # shellcheck disable=SC1090
    source "$USERS_FILE"
    scram=(--add-scram "SCRAM-SHA-512=[name=admin,password=$KAFKA_ADMIN_PASSWORD]"
      --add-scram "SCRAM-SHA-512=[name=emitter,password=$KAFKA_EMITTER_PASSWORD]"
      --add-scram "SCRAM-SHA-512=[name=stranger,password=$KAFKA_STRANGER_PASSWORD]")
  fi
  rm -f "$ACL_MARKER"
  if ! out=$(java_tool kafka.tools.StorageTool format "${quorum[@]}" -t "$cluster_id" -c "$CONFIG" "${scram[@]}" 2>&1); then
    printf '%s\n' "$out" >>"$LOG_DIR/format.log"
    printf '%s\n' "$out" | tail -n 20 >&2
    rm -rf "$DATA_DIR"
    die "formatting the KRaft storage failed (see $LOG_DIR/format.log)"
  fi
  printf '%s\n' "$out" >>"$LOG_DIR/format.log"
  printf 'CLUSTER_ID=%s\n' "$cluster_id" >"$FORMAT_MARKER"
  log "formatted KRaft storage in $DATA_DIR (cluster id $cluster_id)"
}

read_pid() { if [[ -f $PID_FILE ]]; then tr -dc '0-9' <"$PID_FILE"; fi; }

# The pid file names a live process that is our broker (guards against a recycled pid).
is_running() {
  local pid
  pid=$(read_pid)
  [[ -n $pid ]] && pid_alive "$pid" || return 1
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"kafka.Kafka $CONFIG"* ]]
}

# Kafka-protocol ping: send an ApiVersions v0 request to 127.0.0.1:$1 and expect a response carrying
# our correlation id. Proves the broker processes requests (a bare TCP connect does not).
kafka_ping() {
  local port=${1:-$KAFKA_PORT}
  if [[ $KAFKA_SECURITY == sasl_ssl ]]; then
    # the same request inside TLS: ApiVersions is answered before SASL authentication
    local resp
    resp=$(printf '\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x2a\x00\x04ping' \
      | timeout 5 openssl s_client -quiet -ign_eof -verify_return_error -CAfile "$TLS_DIR/ca.pem" \
        -connect "127.0.0.1:$port" 2>/dev/null | head -c 8 | od -An -v -tx1 | tr -d ' \n') || true
    [[ ${resp:8:8} == 0000002a ]]
    return
  fi
  # shellcheck disable=SC2016  # expanded by the inner bash
  timeout 5 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    # size=14 | api_key=18 (ApiVersions) | api_version=0 | correlation_id=0x2a | client_id="ping"
    printf "\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x2a\x00\x04ping" >&3
    resp=$(head -c 8 <&3 | od -An -v -tx1 | tr -d " \n")
    [[ ${resp:8:8} == 0000002a ]]
  ' kafka_ping "$port" 2>/dev/null
}

# shellcheck disable=SC2016  # expanded by the inner bash
port_in_use() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' port_in_use "$1" 2>/dev/null; }

# Offsets of the logs when this start began, so a failure shows only what this start wrote.
SERVER_LOG_OFFSET=0
CONSOLE_LOG_OFFSET=0
file_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

show_log_tail() { # LINES
  local f off
  for f in "$CONSOLE_LOG" "$SERVER_LOG"; do
    off=$SERVER_LOG_OFFSET
    [[ $f == "$CONSOLE_LOG" ]] && off=$CONSOLE_LOG_OFFSET
    [[ -s $f ]] || continue
    [[ $(file_size "$f") -ge $off ]] || off=0  # rolled over meanwhile
    if [[ -n $(tail -c +"$((off + 1))" "$f" | head -c 1) ]]; then
      log "last lines of $f:"
      tail -c +"$((off + 1))" "$f" | grep -v '^\s*$' | tail -n "${1:-40}" >&2 || true
    fi
  done
}

# Alive = exists and is not a zombie (an exited broker is reparented to init, which may reap it late).
pid_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

wait_stopped() { # PID SECONDS -> 0 once gone
  local pid=$1 deadline=$((SECONDS + $2))
  while pid_alive "$pid"; do
    [[ $SECONDS -lt $deadline ]] || return 1
    sleep 0.1
  done
}

wait_ready() { # PID START_SECONDS
  local pid=$1 t0=$2 deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  while :; do
    if ! pid_alive "$pid"; then
      rm -f "$PID_FILE"
      show_log_tail 40
      die "the broker exited during startup"
    fi
    if kafka_ping "$KAFKA_PORT"; then
      log "broker ready on $BOOTSTRAP (pid $pid, $((SECONDS - t0))s); log: $SERVER_LOG"
      return 0
    fi
    if [[ $SECONDS -ge $deadline ]]; then
      show_log_tail 40
      log "the broker did not answer on $BOOTSTRAP within ${KAFKA_START_TIMEOUT}s; stopping it"
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$PID_FILE"
      exit 1
    fi
    sleep 0.25
  done
}

cmd_start() {
  local t0=$SECONDS pid
  check_java
  take_lock
  if is_running; then
    pid=$(read_pid)
    if kafka_ping "$KAFKA_PORT"; then
      log "already running on $BOOTSTRAP (pid $pid); log: $SERVER_LOG"
      return 0
    fi
    log "broker process $pid exists but does not answer yet; waiting"
    wait_ready "$pid" "$t0"
    return 0
  fi
  rm -f "$PID_FILE"
  local p
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    ! port_in_use "$p" || die "port 127.0.0.1:$p is already in use by another process (not this broker: $STATE_DIR)"
  done
  mkdir -p "$LOG_DIR"
  fetch_libs
  make_secrets
  render_config
  format_storage
  SERVER_LOG_OFFSET=$(file_size "$SERVER_LOG")
  printf '===== %s starting broker (%s) =====\n' "$(date '+%F %T')" "$BOOTSTRAP" >>"$CONSOLE_LOG"
  CONSOLE_LOG_OFFSET=$(file_size "$CONSOLE_LOG")
  # setsid: own session, so the broker outlives the caller's terminal / process group.
  # 9>&-: the broker must not inherit the lock fd, or it would hold the lock for its lifetime.
  # shellcheck disable=SC2086
  setsid "$JAVA" $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dkafka.logs.dir="$LOG_DIR" -Dlog4j2.configurationFile="$CONF_DIR/log4j2.properties" \
    $KAFKA_JVM_OPTS -cp "$LIBS_DIR/*" kafka.Kafka "$CONFIG" \
    </dev/null >>"$CONSOLE_LOG" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  log "starting broker (pid $pid) ..."
  wait_ready "$pid" "$t0"
  apply_acls
}

cmd_stop() {
  take_lock
  if ! is_running; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  local pid t0=$SECONDS
  pid=$(read_pid)
  log "stopping broker (pid $pid) ..."
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_stopped "$pid" "$KAFKA_STOP_TIMEOUT"; then
    log "still running after ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_stopped "$pid" 10 || die "pid $pid survived SIGKILL"
  fi
  rm -f "$PID_FILE"
  log "stopped ($((SECONDS - t0))s)"
}

cmd_kill() {
  take_lock
  if ! is_running; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  local pid
  pid=$(read_pid)
  kill -KILL "$pid" 2>/dev/null || true
  wait_stopped "$pid" 10 || die "pid $pid survived SIGKILL"
  rm -f "$PID_FILE"
  log "killed broker (pid $pid); data kept in $DATA_DIR"
}

cmd_status() {
  if ! is_running; then
    log "not running"
    return 3
  fi
  local pid
  pid=$(read_pid)
  if kafka_ping "$KAFKA_PORT"; then
    log "running on $BOOTSTRAP (pid $pid)"
    return 0
  fi
  log "process $pid runs but does not answer on $BOOTSTRAP"
  return 1
}

cmd_reset() {
  cmd_stop
  rm -rf "$DATA_DIR" "$LOG_DIR" "$CONFIG" "$FORMAT_MARKER" "$ACL_MARKER"
  log "deleted $DATA_DIR and $LOG_DIR (jars kept)"
}

cmd_logs() {
  case "${1:-}" in
    --path) echo "$SERVER_LOG"; return 0 ;;
  esac
  [[ -f $SERVER_LOG ]] || die "no broker log yet ($SERVER_LOG)"
  log "$SERVER_LOG"
  if [[ ${1:-} == -f ]]; then exec tail -n 50 -F "$SERVER_LOG"; fi
  tail -n "${KAFKA_LOG_LINES:-100}" "$SERVER_LOG"
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case "$cmd" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  kill) cmd_kill ;;
  status) cmd_status ;;
  classpath) ensure_libs; echo "$LIBS_DIR/*" ;;
  run)
    [[ $# -ge 1 ]] || die "usage: $0 run CLASS [ARGS...]"
    ensure_libs
    check_java
    # shellcheck disable=SC2086
    exec "$JAVA" $KAFKA_TOOL_OPTS -Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.properties" \
      -cp "$LIBS_DIR/*" "$@" 9>&-
    ;;
  logs) cmd_logs "$@" ;;
  paths)
    echo "bootstrap: $BOOTSTRAP"
    echo "security: $KAFKA_SECURITY"
    echo "state: $STATE_DIR"
    if [[ $KAFKA_SECURITY == sasl_ssl ]]; then
      echo "ca: $TLS_DIR/ca.pem"
      echo "other-ca: $TLS_DIR/other-ca.pem"
      echo "users: $USERS_FILE"
    fi
    ;;
  reset) cmd_reset ;;
  -h|--help|help) usage ;;
  "") usage; exit 2 ;;
  *) log "unknown command '$cmd'"; usage; exit 2 ;;
esac
