#!/usr/bin/env bash
# A CI pipeline step: deploy with JSON logs, keep them as an artifact, act on the exit code.
#
#   examples/ci-deploy.sh ENV [extra abfsm deploy flags...]
#
# Exit codes (see README): 0 deployed · 1 a state failed (lock kept, resumable) ·
# 2 bad flags/spec (nothing touched) · 3 refused (locked, both ASGs populated...) ·
# 4 paused at an approval (lock kept; abfsm approve, then abfsm resume) ·
# 130 interrupted (resumable). Set LOCK_BUCKET to share the lock across CI runners.
set -uo pipefail
ENVIRONMENT="${1:?usage: ci-deploy.sh ENV [flags...]}"; shift
ABFSM="${ABFSM:-abfsm}"
LOG="${LOG:-abfsm-$ENVIRONMENT.jsonl}"
LOCK=(); [ -n "${LOCK_BUCKET:-}" ] && LOCK=(--lock-bucket-name "$LOCK_BUCKET")

$ABFSM deploy --environment "$ENVIRONMENT" "${LOCK[@]}" --log-format json "$@" > "$LOG"
code=$?
# The last line is the run.finished event: outcome, exit code, path, error, next steps.
summary="$(tail -n 1 "$LOG")"
python3 - "$summary" <<'PY'
import json, sys
e = json.loads(sys.argv[1])
print(f"abfsm: {e['env']} {e['outcome']} (exit {e['exit_code']}) in {e['duration_s']} s, run {e['run_id']}")
if e.get("error"):
    print(f"  error: {e['error']}")
for step in e.get("next") or []:
    print(f"  next: {step}")
PY
case $code in
  0)   echo "deployed";;
  1)   echo "::error::deployment failed; the old ASG still serves and the lock is kept. Fix, then resume (see next steps above)";;
  2)   echo "::error::bad flags or states.yaml; nothing was touched";;
  3)   echo "::warning::refused (environment locked or both ASGs populated); nothing was changed";;
  4)   echo "::notice::paused at an approval; a later job runs abfsm approve (or reject), then abfsm resume";;
  130) echo "::warning::interrupted; resumable with abfsm resume";;
esac
exit $code
