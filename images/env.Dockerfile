# The environment image of a cell: a base image (an NGC container in production, e.g.
# nvcr.io/nvidia/pytorch:24.12-py3) plus the cell's library pins. repromatrix builds it
# from a context it assembles, tags it repromatrix-env:<hash of base id, pins, this file>,
# labels it org.repromatrix.kind=env and reuses it across repros and runs.
#
# Build arguments:
#   BASE      the base image reference (required), resolved per --pull before the build
#   PIP_ARGS  extra pip arguments (--no-index for offline hosts, an index URL...)
#
# Context (made by executors/docker.py):
#   pins/requirements.txt   one requirement a line: NAME===VERSION for PyPI pins (the
#                           release itself, not a local build NAME==VERSION also matches;
#                           NAME==VERSION+LOCAL for a local build), the path
#                           /opt/repromatrix/pins/src/<lib> for git pins installed by
#                           pip, and every pin's extra `requires`
#                           (where pip finds no file for NAME===VERSION, repromatrix
#                           builds again with the spelling pip lists of that release,
#                           NAME===1.2 for 1.2.0, else NAME==VERSION: local builds only)
#   pins/src/<lib>/         `git archive` of each git pin's commit (from the bare clones of
#                           the env cache); install: pythonpath pins are put on PYTHONPATH
#                           at run time instead of being installed
#   pins/links/<n>/         copies of the --find-links folders (offline wheels and sdists)
#
# Only instructions the legacy builder understands (no BuildKit syntax), so the Docker
# SDK's /build endpoint works on any engine, offline, with the base image preloaded.
ARG BASE
FROM ${BASE}
# First, so every intermediate image of the build carries it too: when a build fails (or
# its image is removed later), `repromatrix clean --docker` can find the layers it left.
LABEL org.repromatrix.kind=env
ARG PIP_ARGS=""
# Which build made a step's container (a random token per run): Ctrl-C removes the
# containers of its own builds by it, which ends a pip compile that would run on for
# an hour; other runs' builds on the engine are left alone.
ARG REPROMATRIX_BUILD=""
LABEL org.repromatrix.build=${REPROMATRIX_BUILD}
# A base may end as another user (`USER bob`): pip would then fall back to a user
# installation in that user's home, which cells (run as the host user, with a HOME of
# their own) never see. The pins go into the image's Python, as root; the user a cell
# runs as is set when its container is made, not by this image.
USER root
COPY pins/ /opt/repromatrix/pins/
# --no-deps: the base image provides torch & co.; pip must not replace them.
# --no-build-isolation: sdists such as flashinfer 0.2.x build against the image's torch.
# PIP_BREAK_SYSTEM_PACKAGES: newer (Ubuntu 24.04-based) NGC images mark their Python as
# externally managed; this image exists to install into exactly that Python.
RUN set -e; \
    req=/opt/repromatrix/pins/requirements.txt; \
    if [ -s "$req" ]; then \
        links=""; \
        for d in /opt/repromatrix/pins/links/*/; do \
            if [ -d "$d" ]; then links="$links --find-links $d"; fi; \
        done; \
        PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --disable-pip-version-check \
            --no-input --no-deps --no-build-isolation --no-compile $links $PIP_ARGS -r "$req"; \
        rm -rf /opt/repromatrix/pins/links /root/.cache/pip; \
    fi
# The image itself belongs to no build: containers made from it (cells, workers, a run's
# that did not build it) carry no build token for a Ctrl-C to take them by.
LABEL org.repromatrix.build=""
