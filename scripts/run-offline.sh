#!/usr/bin/env bash
# Run repromatrix on an air-gapped GPU host from a carried folder, without installing it:
#   CARRY/wheels/  wheels repromatrix needs that the host lacks (pydantic & co.)
#   CARRY/dist/    --find-links folder for library pins (wheels and sdists)
#   CARRY/git/     <library>.bundle git bundles, used as --git-mirror
# Usage: scripts/run-offline.sh CARRY RESULTS_DIR -- <repromatrix run arguments...>
# This is how results/published/ was produced on the lent GPU machine (see README).
set -euo pipefail
carry=$(cd "$1" && pwd); results=$2; shift 2
[ "${1:-}" = "--" ] && shift
site=$(mktemp -d)
python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" "$carry"/wheels/*.whl
export PYTHONPATH="$PWD/src:$site${PYTHONPATH:+:$PYTHONPATH}"
mirrors=()
for b in "$carry"/git/*.bundle; do
  [ -e "$b" ] && mirrors+=(--git-mirror "$(basename "$b" .bundle)=$b")
done
nvidia-smi --query-gpu=index,name,uuid,compute_cap,driver_version --format=csv,noheader || true
exec python3 -m repromatrix run --executor local --no-index --find-links "$carry/dist" \
  "${mirrors[@]}" --results "$results" --no-progress "$@"
