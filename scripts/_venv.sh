# shellcheck shell=bash
# Sourced by the other scripts: make .venv (Python >= 3.11) and install the project into it, once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EMITTER_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "emitter: needs Python >= 3.11 (found: $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
stamp="$VENV/.emitter-installed"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)-${EMITTER_EXTRAS:-dev}"
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "emitter: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "emitter: installing the project and its dependencies into $VENV" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q -e "$ROOT[${EMITTER_EXTRAS:-dev}]" >&2
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
