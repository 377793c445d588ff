#!/usr/bin/env bash
# Run repromatrix on an air-gapped GPU host from a carried folder, without installing it:
#   CARRY/wheels/  wheels repromatrix needs that the host lacks (pydantic & co.)
#   CARRY/dist/    --find-links folder for library pins (wheels and sdists)
#   CARRY/git/     <library>.bundle git bundles, used as --git-mirror
# Usage: scripts/run-offline.sh CARRY run|bisect|report|validate|... [ARGS...]   (from any folder;
# run and bisect get the carried dist/ and git/ as their sources, and --executor local unless
# given one; --matrix, -v and --debug may come before the command too)
# The wheels go into a folder of their own per Python version and set of wheels
# (REPROMATRIX_SITE overrides it); they are on PYTHONPATH for repromatrix only: cells
# import the GPU stack's own packages (REPROMATRIX_OWN_PATH tells the harness which).
# This is how results/published/ was produced on the lent GPU machine (see README).
set -euo pipefail
if [ $# -lt 2 ] || [ ! -d "$1" ]; then
  echo "usage: scripts/run-offline.sh CARRY run|bisect|report|validate|list|clean [ARGS...] (CARRY: a folder with wheels/, dist/, git/)" >&2
  exit 64
fi
carry=$(cd "$1" && pwd); shift
# repromatrix's own options may come before the command (`--matrix m.yaml run`, as
# `repromatrix --matrix m.yaml run` is written): taken for the command, they made `run`
# go without the carried sources below.
globals=()
while [ $# -gt 0 ]; do
  case $1 in
    --matrix) globals+=("$1"); shift; if [ $# -gt 0 ]; then globals+=("$1"); shift; fi ;;
    --matrix=*|-v|--verbose|--debug) globals+=("$1"); shift ;;
    *) break ;;
  esac
done
command=${1-}; [ $# -gt 0 ] && shift
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
wheels=("$carry"/wheels/*.whl)
if [ ! -e "${wheels[0]}" ]; then
  echo "run-offline: no wheels in $carry/wheels (pydantic, pyyaml, jinja2, rich, packaging, ...); carry them there" >&2
  exit 4
fi
tag=$(python3 -c 'import sys; print("py%d%d" % sys.version_info[:2])')
stamp=$(printf '%s\n' "${wheels[@]##*/}" | sort | sha256sum | cut -c1-12)
site=${REPROMATRIX_SITE:-/tmp/repromatrix-site-$tag-$stamp}
if [ ! -f "$site/.complete" ]; then
  rm -rf "$site"
  # As root (the usual user of a lent GPU host) pip warns of root on every first run;
  # only that warning is quieted: pip's errors still show and stop the script.
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --no-index --no-deps --no-compile \
    --target "$site" "${wheels[@]}"
  touch "$site/.complete"
fi
own="$repo/src:$site"
export PYTHONPATH="$own${PYTHONPATH:+:$PYTHONPATH}"
export REPROMATRIX_OWN_PATH="$own"
case $command in
  run|bisect) ;;
  # The others take none of the flags below (`report` was handed them and failed with
  # "unrecognized arguments: --executor local ...", which the user never typed).
  *) exec python3 -m repromatrix "${globals[@]}" ${command:+"$command"} "$@" ;;
esac
# CARRY/dist is the pins' source when carried (without it, --find-links named a folder
# the user never gave: "not a directory").
sources=()
[ -d "$carry/dist" ] && sources+=(--find-links "$carry/dist")
for b in "$carry"/git/*.bundle; do
  [ -e "$b" ] && sources+=(--git-mirror "$(basename "$b" .bundle)=$b")
done
# The local executor unless the user names one (`run` refuses --executor given twice).
executor=(--executor local)
for arg in "$@"; do
  case $arg in --executor|--executor=*) executor=() ;; esac
done
exec python3 -m repromatrix "${globals[@]}" "$command" "${executor[@]}" --no-index \
  "${sources[@]}" --no-progress "$@"
