#!/usr/bin/env bash
# Montage AI launcher: sets up .venv on first use (and when pyproject.toml changes), warms
# librosa's numba cache once, then hands every subcommand to the `montage-ai` console script.
#   ./montage-ai.sh demo      make demo media and render a montage from it
#   ./montage-ai.sh test      run the whole test suite (extra args go to pytest)
#   ./montage-ai.sh run --clips DIR --music FILE [...]   see ./montage-ai.sh run --help
#   ./montage-ai.sh blender-addon | kdenlive-install     editor integrations (docs/blender.md, docs/kdenlive-integration.md)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${MONTAGE_VENV:-$ROOT/.venv}"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$ROOT/.cache/numba}"

find_python() {
  # only the Pythons the suite runs on in CI (3.11 and 3.13 whole, 3.12 without the slow tests), the oldest first; a newer one is
  # refused rather than half-working (its wheels may not exist yet)
  for py in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [ -n "$py" ] || continue
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  echo "montage-ai: error: Python 3.11, 3.12 or 3.13 is needed (install one, or set PYTHON=/path/to/python3.11)" >&2
  return 1
}

setup() {
  # $1: the extras this command needs: "test" for the suite (pytest, playwright, the upscaler),
  # "upscale" for everything else (the local upscaler where it has a wheel; never blocks)
  local extras="${1:-upscale}" stamp="$VENV/.montage-ai-installed" sum have
  sum="$(cksum < "$ROOT/pyproject.toml")"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "montage-ai: creating virtualenv in $VENV" >&2
    "$(find_python)" -m venv "$VENV"
  fi
  have="$(cat "$stamp" 2>/dev/null || true)"
  if [ "$have" != "$sum test" ] && [ "$have" != "$sum $extras" ]; then
    echo "montage-ai: installing the package and its dependencies (first run only)" >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[$extras]" >&2
    echo "$sum $extras" > "$stamp"
  fi
  if [ ! -f "$NUMBA_CACHE_DIR/.warm" ]; then
    echo "montage-ai: warming librosa's numba cache (about a minute, once)" >&2
    mkdir -p "$NUMBA_CACHE_DIR"
    "$VENV/bin/python" "$ROOT/scripts/warm_numba.py" && touch "$NUMBA_CACHE_DIR/.warm"
  fi
}

cmd="${1:-help}"
# --docker (or MONTAGE_DOCKER=1): run the engine in the container, host paths mapped to volumes.
# cgpu-start/stop/status always stay on the host, where the Gemini login lives.
want_docker="${MONTAGE_DOCKER:-0}"
for a in "$@"; do [ "$a" = "--docker" ] && want_docker=1; done
case "$cmd" in cgpu-*|test|setup|help|-h|--help|blender-addon|kdenlive-install) want_docker=0 ;; esac
if [ "$want_docker" = "1" ]; then
  exec "$(find_python)" "$ROOT/engine/montage_ai/deploy/docker_run.py" "$@"
fi
case "$cmd" in
  help|-h|--help)
    sed -n '2,7p' "$0"; exit 0 ;;
  setup)
    setup; exit 0 ;;
  test)
    shift; setup test
    cd "$ROOT"
    exec "$VENV/bin/python" -m pytest tests "$@" ;;
  blender-addon)   # build the Blender extension zip (OTIO wheels bundled) into nle_addons/blender/dist
    shift; setup; exec "$VENV/bin/python" "$ROOT/nle_addons/blender/build_extension.py" "$@" ;;
  kdenlive-install) # add the Montage AI clip jobs to Kdenlive's configuration (--uninstall to remove)
    shift; exec "$(find_python)" "$ROOT/nle_addons/kdenlive/install.py" "$@" ;;
  *)
    setup
    exec "$VENV/bin/montage-ai" "$@" ;;
esac
