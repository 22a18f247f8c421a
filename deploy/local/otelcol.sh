#!/usr/bin/env bash
# Build and run a real OpenTelemetry Collector (otelcol-emitter) on 127.0.0.1 for
# development, tests and CI. No Docker: the collector is compiled from Go modules
# with the OpenTelemetry Collector Builder (ocb), then run as a background process.
#
# Usage: deploy/local/otelcol.sh build [--force] | start | stop | restart | status | validate | paths
#
#   build     install the builder and compile the collector (cached: skipped when the
#             binary exists and the manifest, builder version and Go version are unchanged)
#   start     build if needed, validate the config, start in the background and wait for
#             "Everything is ready"; prints the log and traces file paths. Idempotent.
#   stop      SIGTERM, then SIGKILL after OTELCOL_STOP_TIMEOUT seconds. Idempotent.
#   status    exit 0 if running, 1 if not
#   validate  check the config (collector "validate" command) with the current environment
#   paths     print the binary, log, pid and traces file paths, the TLS dir, token file and the
#             secured endpoints (one "name: value" per line)
#
# Receivers (otelcol/config.yaml; both feed the traces pipeline (traces file, Kafka) and the metrics
# pipeline (metrics file)):
#   otlp          plain       gRPC 127.0.0.1:4317, HTTP 127.0.0.1:4318
#   otlp/secure   TLS + token gRPC 127.0.0.1:4319, HTTP 127.0.0.1:4320: the server certificate is
#                 signed by <state>/tls/ca.pem (made by deploy/local/tls.sh), and each request must
#                 carry "authorization: Bearer $(cat <state>/tls/token)" (a random token, made once,
#                 mode 600). start and validate make both when missing. E.g.
#     tls=$(deploy/local/otelcol.sh paths | sed -n 's/^tls: *//p')
#     OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20$(cat "$tls/token")" \
#       emitter run ... --sink "otlp+grpcs://127.0.0.1:4319?certificate=$tls/ca.pem"
#                 (otlp+https://127.0.0.1:4320 for HTTP). Wrong token: gRPC UNAUTHENTICATED, HTTP 401.
#
# Environment:
#   EMITTER_LOCAL_DIR       state root (default <repo>/.local); state lives in $EMITTER_LOCAL_DIR/otelcol
#   OTELCOL_KAFKA           1 (default): traces go to [file, kafka]; 0: file only (adds config-nokafka.yaml)
#   OTELCOL_FILE_PATH       traces output file (default <state>/traces.jsonl, truncated at each start)
#   OTELCOL_METRICS_FILE_PATH  metrics output file (default <state>/metrics.jsonl, truncated at each start)
#   OTELCOL_EXTRA_CONFIG    extra config files (space separated), each appended as --config=FILE
#                           after config.yaml; later files override earlier ones, lists are replaced
#   OTELCOL_START_TIMEOUT   seconds to wait for readiness (default 60)
#   OTELCOL_STOP_TIMEOUT    seconds between SIGTERM and SIGKILL (default 15)
#   OTELCOL_OTLP_SECURE_GRPC_ENDPOINT, OTELCOL_OTLP_SECURE_HTTP_ENDPOINT  otlp/secure's endpoints
#   OTELCOL_BUILDER_VERSION builder version (default below; must match the manifest's core modules)
#   Other OTELCOL_* variables are read by otelcol/config.yaml (endpoints, broker, topic, batch sizes).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

# The builder pins the core collector version: keep equal to the manifest's v0.x core modules.
BUILDER_VERSION="${OTELCOL_BUILDER_VERSION:-v0.165.0}"
BUILDER_MODULE="go.opentelemetry.io/collector/cmd/builder"
DIST_NAME="otelcol-emitter"

MANIFEST="$SCRIPT_DIR/otelcol/builder-config.yaml"
CONFIG="$SCRIPT_DIR/otelcol/config.yaml"
CONFIG_NOKAFKA="$SCRIPT_DIR/otelcol/config-nokafka.yaml"

LOCAL_DIR="${EMITTER_LOCAL_DIR:-$REPO_ROOT/.local}"
case "$LOCAL_DIR" in /*) ;; *) LOCAL_DIR="$PWD/$LOCAL_DIR" ;; esac # GOBIN must be absolute
STATE_DIR="$LOCAL_DIR/otelcol"
BIN_DIR="$STATE_DIR/bin"
BUILD_DIR="$STATE_DIR/build"
LOG_DIR="$STATE_DIR/logs"
LOG_FILE="$LOG_DIR/otelcol.log"
BUILD_LOG="$LOG_DIR/build.log"
PID_FILE="$STATE_DIR/otelcol.pid"
COLLECTOR="$BIN_DIR/$DIST_NAME"
HASH_FILE="$COLLECTOR.manifest.sha256"
BUILDER="$BIN_DIR/builder"
TRACES_FILE="${OTELCOL_FILE_PATH:-$STATE_DIR/traces.jsonl}"
METRICS_FILE="${OTELCOL_METRICS_FILE_PATH:-$STATE_DIR/metrics.jsonl}"
TLS_DIR="$STATE_DIR/tls"     # server.pem/server.key for otlp/secure; clients trust ca.pem
TOKEN_FILE="$TLS_DIR/token"  # the bearer token otlp/secure accepts
SECURE_GRPC="${OTELCOL_OTLP_SECURE_GRPC_ENDPOINT:-127.0.0.1:4319}"
SECURE_HTTP="${OTELCOL_OTLP_SECURE_HTTP_ENDPOINT:-127.0.0.1:4320}"

START_TIMEOUT="${OTELCOL_START_TIMEOUT:-60}"
STOP_TIMEOUT="${OTELCOL_STOP_TIMEOUT:-15}"
READY_LINE="Everything is ready. Begin running and processing data."

log() { printf 'otelcol.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

show_log_tail() { # file [lines]
    local f="$1" n="${2:-40}"
    if [[ -s "$f" ]]; then
        log "last $n lines of $f:"
        tail -n "$n" "$f" | sed 's/^/    /' >&2
    fi
}

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
}

take_lock() {
    mkdir -p "$STATE_DIR"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$STATE_DIR/.lock"
        flock -w 900 9 || die "timed out waiting for the lock $STATE_DIR/.lock (another otelcol.sh running?)"
    fi
}

require_go() {
    command -v go >/dev/null 2>&1 || die "'go' not found on PATH (Go >= 1.25 is needed to build the collector)"
}

# Hash of everything that determines the binary: manifest, builder version, Go version, platform.
manifest_hash() {
    {
        cat "$MANIFEST"
        printf 'builder=%s\n' "$BUILDER_VERSION"
        printf 'go=%s %s/%s\n' "$(go env GOVERSION)" "$(go env GOOS)" "$(go env GOARCH)"
    } | sha256sum | cut -d' ' -f1
}

is_built() {
    [[ -x "$COLLECTOR" && -f "$HASH_FILE" ]] || return 1
    command -v go >/dev/null 2>&1 || return 0 # cannot check: trust the cached binary
    [[ "$(cat "$HASH_FILE")" == "$(manifest_hash)" ]]
}

install_builder() {
    if [[ -x "$BUILDER" && "$("$BUILDER" version 2>&1 || true)" == *"$BUILDER_VERSION"* ]]; then
        return 0
    fi
    log "installing $BUILDER_MODULE@$BUILDER_VERSION into $BIN_DIR"
    GOBIN="$BIN_DIR" go install "$BUILDER_MODULE@$BUILDER_VERSION" >>"$BUILD_LOG" 2>&1 || {
        show_log_tail "$BUILD_LOG"
        die "could not install the collector builder $BUILDER_VERSION"
    }
}

do_build() {
    local force="${1:-}"
    require_go
    [[ -f "$MANIFEST" ]] || die "missing builder manifest $MANIFEST"
    if [[ "$force" != "--force" ]] && is_built; then
        log "collector is up to date: $COLLECTOR"
        return 0
    fi
    mkdir -p "$BIN_DIR" "$LOG_DIR"
    : >"$BUILD_LOG"
    install_builder

    # Render the manifest with output_path pointing into the state dir.
    local rendered="$STATE_DIR/builder-config.rendered.yaml"
    sed "s#^\([[:space:]]*output_path:\).*#\1 $BUILD_DIR#" "$MANIFEST" >"$rendered"
    grep -qF "output_path: $BUILD_DIR" "$rendered" || die "could not set dist.output_path in $rendered"
    rm -rf "$BUILD_DIR"

    # GOFLAGS -e: the builder runs "go mod tidy", which also resolves the *test* imports of
    # the component modules; some of those (e.g. contrib's otlpencodingextension, imported by
    # fileexporter's tests) are not served by the module proxy. "-e" lets tidy carry on past
    # them; go build ignores the flag. A module that is really needed still fails the build
    # (as "missing go.sum entry"). Keep any GOFLAGS from the environment or go env.
    local goflags
    goflags="$(go env GOFLAGS)"
    log "building $DIST_NAME with builder $BUILDER_VERSION (cold: ~2 min on 2 cores; log: $BUILD_LOG)"
    local t0=$SECONDS
    if ! GOFLAGS="${goflags:+$goflags }-e" "$BUILDER" --config="$rendered" >>"$BUILD_LOG" 2>&1; then
        show_log_tail "$BUILD_LOG"
        die "collector build failed (see $BUILD_LOG)"
    fi
    [[ -x "$BUILD_DIR/$DIST_NAME" ]] || die "builder succeeded but $BUILD_DIR/$DIST_NAME is missing"
    cp "$BUILD_DIR/$DIST_NAME" "$COLLECTOR.tmp"
    mv -f "$COLLECTOR.tmp" "$COLLECTOR"
    manifest_hash >"$HASH_FILE"
    log "built $COLLECTOR in $((SECONDS - t0))s"
}

ensure_built() {
    if is_built; then return 0; fi
    do_build
}

# --config arguments for the collector.
config_args() {
    CONFIG_ARGS=(--config="$CONFIG")
    case "${OTELCOL_KAFKA:-1}" in
        0 | false | no | off) CONFIG_ARGS+=(--config="$CONFIG_NOKAFKA") ;;
        1 | true | yes | on | "") ;;
        *) die "OTELCOL_KAFKA must be 1 or 0 (got '${OTELCOL_KAFKA}')" ;;
    esac
    local extra
    for extra in ${OTELCOL_EXTRA_CONFIG:-}; do
        CONFIG_ARGS+=(--config="$extra")
    done
}

kafka_mode() {
    case "${OTELCOL_KAFKA:-1}" in 0 | false | no | off) echo "off" ;; *) echo "on" ;; esac
}

# TLS material (deploy/local/tls.sh, idempotent) and the bearer token for otlp/secure, made once.
ensure_secrets() {
    "$SCRIPT_DIR/tls.sh" "$TLS_DIR" >/dev/null || die "could not make the TLS material in $TLS_DIR"
    if [[ ! -s "$TOKEN_FILE" ]]; then
        local tmp
        tmp="$(umask 077 && mktemp "$TLS_DIR/.token.XXXXXX")"
        # 32 random bytes as hex: no character needs quoting in a header or a URI
        if ! od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$tmp" || [[ ! -s "$tmp" ]]; then
            rm -f "$tmp"
            die "could not make the token file $TOKEN_FILE"
        fi
        chmod 600 "$tmp"
        mv -f "$tmp" "$TOKEN_FILE"
        log "made a bearer token for otlp/secure: $TOKEN_FILE"
    fi
}

# The environment config.yaml reads, for validate and start (through env(1): no subshell, so the
# background pid is the collector's own).
COLLECTOR_ENV=(env OTELCOL_FILE_PATH="$TRACES_FILE" OTELCOL_METRICS_FILE_PATH="$METRICS_FILE" OTELCOL_TLS_DIR="$TLS_DIR" OTELCOL_TOKEN_FILE="$TOKEN_FILE")

do_validate() {
    ensure_built
    ensure_secrets
    config_args
    local out
    if ! out="$("${COLLECTOR_ENV[@]}" "$COLLECTOR" validate "${CONFIG_ARGS[@]}" 2>&1)"; then
        printf '%s\n' "$out" | sed 's/^/    /' >&2
        die "config is invalid: ${CONFIG_ARGS[*]}"
    fi
    log "config is valid (kafka exporter: $(kafka_mode))"
}

# Prints the pid if our collector is running.
running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against a recycled pid: the process must be our collector binary.
    if [[ -r "/proc/$pid/cmdline" ]]; then
        local cmdline
        cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
        [[ "$cmdline" == *"$DIST_NAME"* ]] || return 1
    fi
    echo "$pid"
}

print_paths() {
    echo "binary:  $COLLECTOR"
    echo "log:     $LOG_FILE"
    echo "pid:     $PID_FILE"
    echo "traces:  $TRACES_FILE"
    echo "metrics: $METRICS_FILE"
    echo "tls:     $TLS_DIR"
    echo "token:   $TOKEN_FILE"
    echo "grpcs:   $SECURE_GRPC"
    echo "https:   $SECURE_HTTP"
}

do_start() {
    local pid
    if pid="$(running_pid)"; then
        log "already running (pid $pid)"
        print_paths
        return 0
    fi
    rm -f "$PID_FILE"
    ensure_built
    ensure_secrets
    do_validate
    mkdir -p "$LOG_DIR" "$(dirname "$TRACES_FILE")"
    if [[ -f "$LOG_FILE" ]]; then mv -f "$LOG_FILE" "$LOG_FILE.1"; fi
    config_args
    log "starting $DIST_NAME (kafka exporter: $(kafka_mode))"
    # fd 9 (the lock) must not leak into the long-running collector.
    nohup "${COLLECTOR_ENV[@]}" "$COLLECTOR" "${CONFIG_ARGS[@]}" \
        </dev/null >"$LOG_FILE" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$PID_FILE"

    local ticks=0 # 0.2 s each
    while ! grep -qF "$READY_LINE" "$LOG_FILE" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            show_log_tail "$LOG_FILE"
            die "collector exited during startup (log: $LOG_FILE)"
        fi
        if ((ticks++ >= START_TIMEOUT * 5)); then
            show_log_tail "$LOG_FILE"
            do_stop >/dev/null 2>&1 || true
            die "collector not ready after ${START_TIMEOUT}s (log: $LOG_FILE)"
        fi
        sleep 0.2
    done
    log "ready (pid $pid): OTLP gRPC ${OTELCOL_OTLP_GRPC_ENDPOINT:-127.0.0.1:4317}, HTTP ${OTELCOL_OTLP_HTTP_ENDPOINT:-127.0.0.1:4318}; TLS + token: gRPC $SECURE_GRPC, HTTP $SECURE_HTTP"
    print_paths
}

do_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    log "stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local ticks=0 # 0.2 s each
    while kill -0 "$pid" 2>/dev/null; do
        if ((ticks++ >= STOP_TIMEOUT * 5)); then
            log "still running after ${STOP_TIMEOUT}s: sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
    rm -f "$PID_FILE"
    log "stopped"
}

do_status() {
    local pid
    if pid="$(running_pid)"; then
        echo "running (pid $pid)"
        print_paths
        return 0
    fi
    echo "not running"
    return 1
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        build) take_lock; do_build "${1:-}" ;;
        start) take_lock; do_start ;;
        stop) take_lock; do_stop ;;
        restart) take_lock; do_stop; do_start ;;
        status) do_status ;;
        validate) do_validate ;;
        paths) print_paths ;;
        -h | --help | help) usage ;;
        *) usage; exit 2 ;;
    esac
}

main "$@"
