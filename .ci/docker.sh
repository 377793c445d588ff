#!/usr/bin/env bash
# Provision Docker for the tests, idempotently: install the engine from Debian's docker.io
# when it is missing, start dockerd when it is not answering, and build the registry-free
# test base image (images/test-base.sh reuses it when present). Exits non-zero on failure.
#
#   bash .ci/docker.sh            # or `source .ci/docker.sh` (then it returns, not exits)
#
# Variables: DOCKERD_LOG (default /tmp/dockerd.log), DOCKER_WAIT_S (default 60).
# Nothing here talks to a registry: the test image is bootstrapped from the apt mirror.

_repromatrix_ci_docker() {
    set -euo pipefail
    local here root log wait_s
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    root="$(cd "${here}/.." && pwd)"
    log="${DOCKERD_LOG:-/tmp/dockerd.log}"
    wait_s="${DOCKER_WAIT_S:-60}"

    say() { printf 'ci/docker: %s\n' "$*" >&2; }
    fail() { say "error: $*"; return 1; }
    sudo_if_needed() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if ((${#missing[@]})); then
        say "installing ${missing[*]} (apt)"
        sudo_if_needed apt-get update -qq || fail "apt-get update failed"
        sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${missing[@]}" >/dev/null || fail "apt-get install failed"
    fi
    command -v docker >/dev/null || fail "the docker client is missing (package docker.io)"

    if docker info >/dev/null 2>&1; then
        say "engine already running ($(docker version --format '{{.Server.Version}}'))"
    else
        if [[ -n "${DOCKER_HOST:-}" && "${DOCKER_HOST}" != unix:///var/run/docker.sock ]]; then
            fail "DOCKER_HOST=${DOCKER_HOST} does not answer; not starting a local dockerd"
        fi
        say "starting dockerd (log: ${log})"
        # setsid + nohup: the daemon outlives this script and the CI step that ran it.
        sudo_if_needed setsid nohup dockerd >"${log}" 2>&1 </dev/null &
        local deadline=$((SECONDS + wait_s))
        until docker info >/dev/null 2>&1; do
            if ((SECONDS >= deadline)); then
                tail -n 30 "${log}" >&2 || true
                fail "dockerd did not answer within ${wait_s} s (log above: ${log})"
            fi
            sleep 0.5
        done
        say "engine up ($(docker version --format '{{.Server.Version}}'))"
    fi

    bash "${root}/images/test-base.sh" >/dev/null || fail "building the test base image failed"
}

if [[ "${BASH_SOURCE[0]}" == "${0}" ]]; then
    _repromatrix_ci_docker
else
    # Sourced: run in a subshell so `set -e` and the helpers do not leak into the caller.
    ( _repromatrix_ci_docker )
fi
