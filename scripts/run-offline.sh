#!/usr/bin/env bash
# Run repromatrix on an air-gapped GPU host from a carried folder, without installing it:
#   CARRY/wheels/  wheels repromatrix needs that the host lacks (pydantic & co.)
#   CARRY/dist/    --find-links folder for library pins (wheels and sdists)
#   CARRY/git/     <library>.bundle git bundles, used as --git-mirror
# Usage: scripts/run-offline.sh CARRY run|bisect [ARGS...]
# This is how results/published/ was produced on the lent GPU machine (see README).
set -euo pipefail
carry=$(cd "$1" && pwd); command=$2; shift 2
site=${REPROMATRIX_SITE:-/tmp/repromatrix-site}
if [ ! -d "$site/pydantic" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" "$carry"/wheels/*.whl
fi
export PYTHONPATH="$PWD/src:$site${PYTHONPATH:+:$PYTHONPATH}"
mirrors=()
for b in "$carry"/git/*.bundle; do
  [ -e "$b" ] && mirrors+=(--git-mirror "$(basename "$b" .bundle)=$b")
done
exec python3 -m repromatrix "$command" --executor local --no-index --find-links "$carry/dist" \
  "${mirrors[@]}" --no-progress "$@"
