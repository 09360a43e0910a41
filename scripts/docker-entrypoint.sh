#!/bin/sh
# The image's entry point: any host user id (`docker run --user UID:GID`) gets its own cache
# folder in the shared cache volume (a run as root leaves nothing another user cannot write),
# and a HOME it can write even without a passwd entry.
set -e
: "${MONTAGE_CACHE_DIR:=/data/cache/uid-$(id -u)}"
export MONTAGE_CACHE_DIR
# `cgpu serve` on "this machine" means the host, seen from here (as the launcher maps it)
case "${CGPU_HOST:-}" in ""|127.0.0.1|localhost|::1) export CGPU_HOST=host.docker.internal ;; esac
if [ ! -w "${HOME:-/}" ]; then
  export HOME=/tmp
fi
exec montage-ai "$@"
