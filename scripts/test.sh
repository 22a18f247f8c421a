#!/usr/bin/env bash
# Everything the tests need, then the tests: install, lint, type-check, check the layers, start the real servers the
# integration tests use (and stop them afterwards), run pytest. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"

echo "== ruff" >&2
ruff check emitter tests bench
ruff format --check emitter tests bench
echo "== mypy (strict)" >&2
mypy
echo "== lint-imports (the layers of docs/architecture.md)" >&2
lint-imports --no-cache

echo "== servers: real Kafka (a broker, a SASL_SSL broker with ACLs, a three-node cluster), a real OpenTelemetry Collector and a real Jaeger" >&2
# Start what is not running yet, and stop (when the tests end) only what this script started.
server() { # NAME COMMAND
  case $1 in
    kafka-sasl) KAFKA_SECURITY=sasl_ssl deploy/local/kafka.sh "$2" ;;
    kafka-cluster) deploy/local/kafka-cluster.sh "$2" ;;
    *) "deploy/local/$1.sh" "$2" ;;
  esac
}
started=()
cleanup() { for s in "${started[@]}"; do server "$s" stop || true; done; }
trap cleanup EXIT
for s in kafka kafka-sasl kafka-cluster otelcol jaeger; do
  if ! server "$s" status >/dev/null 2>&1; then
    server "$s" start
    started+=("$s")
  fi
done

echo "== headless Chromium for the report tests" >&2
EMITTER_CHROMIUM="$(scripts/chromium.sh)"
export EMITTER_CHROMIUM

echo "== pytest" >&2
status=0
python -m pytest "$@" || status=$?
if [[ $status -eq 5 ]]; then
  echo "emitter: pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
exit "$status"
