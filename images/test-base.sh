#!/usr/bin/env bash
# Build the small base image the Docker tests run in, without any registry:
# debootstrap a minimal Debian root filesystem (python3 only) from the apt mirror this host
# is configured with, then `docker import` it. Reused when an image built from this same
# recipe is already present (the recipe's hash is in the label org.repromatrix.recipe).
#
#   images/test-base.sh            # prints the image reference on stdout
#   REPROMATRIX_TEST_BASE=repromatrix-test-base:bookworm   (the reference it builds)
#   REPROMATRIX_DEBIAN_MIRROR=URL  (overrides the mirror read from /etc/apt)
#   REPROMATRIX_TEST_BASE_INCLUDE=python3,python3-pip  (packages beyond minbase; the tests
#       of PyPI pins in env images build a second image with pip this way)
#
# The mirror is read at run time from /etc/apt: no host name is written into the repository.
set -euo pipefail

SUITE=bookworm
INCLUDE="${REPROMATRIX_TEST_BASE_INCLUDE:-python3}"
REF="${REPROMATRIX_TEST_BASE:-repromatrix-test-base:${SUITE}}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { echo "test-base: $*" >&2; }
die() { log "error: $*"; exit 1; }

command -v docker >/dev/null || die "docker client not found (run .ci/docker.sh first)"
docker info >/dev/null 2>&1 || die "Docker engine not reachable (run .ci/docker.sh first)"

# The recipe: this script itself plus the variables that change what it builds.
recipe="$( { cat "${here}/test-base.sh"; echo "${SUITE} ${INCLUDE} $(uname -m)"; } \
    | sha256sum | cut -c1-16)"

have="$(docker image inspect --format '{{ index .Config.Labels "org.repromatrix.recipe" }}' \
    "${REF}" 2>/dev/null || true)"
if [[ "${have}" == "${recipe}" ]]; then
    log "reusing ${REF} (recipe ${recipe})"
    echo "${REF}"
    exit 0
fi

mirror_from_apt() {
    # deb822 (*.sources): the URIs of the stanza whose Suites list the plain suite.
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        awk -v suite="${SUITE}" '
            /^[[:space:]]*$/ { if (uri != "" && ok) { print uri; exit } uri=""; ok=0; next }
            tolower($1) == "uris:" { uri=$2 }
            tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) ok=1 }
            END { if (uri != "" && ok) print uri }
        ' "$f" | head -n1
    done
    # One-line format: deb [options] URL SUITE COMPONENTS...
    if [[ -f /etc/apt/sources.list ]]; then
        awk -v suite="${SUITE}" '$1 == "deb" {
            for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { url=$i; s=$(i+1); break }
            if (s == suite) { print url; exit }
        }' /etc/apt/sources.list
    fi
}

mirror="${REPROMATRIX_DEBIAN_MIRROR:-$(mirror_from_apt | head -n1)}"
[[ -n "${mirror}" ]] || die "no Debian mirror for ${SUITE} in /etc/apt; set REPROMATRIX_DEBIAN_MIRROR"
command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"

work="$(mktemp -d "${TMPDIR:-/tmp}/repromatrix-test-base.XXXXXX")"
trap 'rm -rf "${work}"' EXIT
log "debootstrap ${SUITE} (minbase + ${INCLUDE}) from ${mirror}"
if ! debootstrap --variant=minbase --include="${INCLUDE}" "${SUITE}" "${work}/rootfs" "${mirror}" \
        >"${work}/debootstrap.log" 2>&1; then
    tail -n 20 "${work}/debootstrap.log" >&2
    die "debootstrap failed"
fi
# Trim what a test image never needs (apt lists and caches, docs).
rm -rf "${work}/rootfs/var/lib/apt/lists/"* "${work}/rootfs/var/cache/apt/"*.bin \
    "${work}/rootfs/var/cache/apt/archives/"*.deb "${work}/rootfs/usr/share/doc/"* \
    "${work}/rootfs/usr/share/man/"*

log "importing as ${REF}"
tar -C "${work}/rootfs" --numeric-owner -c . | docker import \
    --change "LABEL org.repromatrix.kind=test-base" \
    --change "LABEL org.repromatrix.recipe=${recipe}" \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV LANG=C.UTF-8" \
    --change 'CMD ["python3"]' \
    - "${REF}" >/dev/null
# The image this one replaces (an older recipe) is now untagged: remove it.
docker image prune -f --filter "label=org.repromatrix.kind=test-base" >/dev/null || true
docker run --rm "${REF}" python3 -c 'import sys; print(sys.version.split()[0])' >/dev/null \
    || die "${REF} was imported but python3 does not run in it"
log "built ${REF} (recipe ${recipe})"
echo "${REF}"
