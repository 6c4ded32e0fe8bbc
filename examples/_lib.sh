# Shared by the example scripts: start the emulator, point boto3 at it, stop it on exit.
# Uses the project's virtualenv (make demo / make test create it) unless ABFSM is set.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
ABFSM="${ABFSM:-$PY -m abfsm}"
WORK="$(mktemp -d)"
start_emulator() {
  "$PY" "$HERE/emulator.py" "$WORK/endpoint" "$@" &
  EMULATOR_PID=$!
  trap 'kill $EMULATOR_PID 2>/dev/null; wait $EMULATOR_PID 2>/dev/null; rm -rf "$WORK"' EXIT
  # a few seconds alone; much longer on a loaded machine (moto's imports)
  for _ in $(seq 600); do [ -s "$WORK/endpoint" ] && break; sleep 0.1; done
  [ -s "$WORK/endpoint" ] || { echo "the emulator did not start within 60 s" >&2; exit 1; }
  export AWS_ENDPOINT_URL="$(cat "$WORK/endpoint")" AWS_REGION=us-east-1
  export AWS_ACCESS_KEY_ID=example AWS_SECRET_ACCESS_KEY=example
  export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
  echo "emulator at $AWS_ENDPOINT_URL"
}
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
