#!/usr/bin/env bash
# Blender as a Python module for the Blender add-on tests: .venv-bpy at the repo root, Python
# 3.11 (PyPI's bpy 5.1+ needs 3.13; bpy 5.0.1 is the newest wheel for 3.11) with bpy==5.0.1 and
# the numpy<2 it pins. Its own virtualenv because the engine uses numpy 2. No OpenTimelineIO
# here on purpose: the tests install the extension zip, whose bundled wheel must provide it, as
# in a real Blender. About 820 MB, once: a stamp file records what was installed, and a re-run
# with the same stamp does nothing.
#   scripts/setup_bpy.sh            install or reuse; prints the venv's python on stdout
#   MONTAGE_BPY_VENV=DIR            another location;  PYTHON_BPY=/path/python3.11  the interpreter
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MONTAGE_BPY_VENV:-$ROOT/.venv-bpy}"
REQS=("bpy==5.0.1" "numpy<2")
WANT="v2 ${REQS[*]}"
STAMP="$VENV/.montage-bpy-installed"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/python" ]; then
  [ -f "$VENV/.gitignore" ] || echo '*' > "$VENV/.gitignore"
  echo "$VENV/bin/python"; exit 0
fi

find_py311() {
  for py in "${PYTHON_BPY:-}" python3.11 "$ROOT/.venv/bin/python" python3; do
    [ -n "$py" ] || continue
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      # a venv's python makes a venv of its base interpreter
      "$py" -c 'import sys; print(getattr(sys, "_base_executable", sys.executable))'; return 0
    fi
  done
  echo "setup_bpy: error: Python 3.11 is needed for bpy 5.0.1 (set PYTHON_BPY=/path/to/python3.11)" >&2
  return 1
}

mkdir -p "$VENV"
# keep the 800+ MB out of git whatever the repository's .gitignore says (Python 3.13's venv does this too)
[ -f "$VENV/.gitignore" ] || echo '*' > "$VENV/.gitignore"
exec 9>"$VENV/.setup.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
# another process may have finished the install while this one waited for the lock
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then echo "$VENV/bin/python"; exit 0; fi

start=$(date +%s)
PY="$(find_py311)"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup_bpy: creating $VENV with $PY" >&2
  "$PY" -m venv "$VENV"
fi
echo "setup_bpy: installing ${REQS[*]} (about 820 MB, once)" >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQS[@]}" >&2
# a bpy venv from an older stamp may still hold OpenTimelineIO: the extension must bring its own
"$VENV/bin/python" -m pip uninstall --quiet --yes opentimelineio >/dev/null 2>&1 || true
"$VENV/bin/python" -c 'import bpy; print("setup_bpy: bpy", bpy.app.version_string)' >&2
echo "$WANT" > "$STAMP"
echo "$(( $(date +%s) - start ))" > "$VENV/.install-seconds"
echo "setup_bpy: done in $(cat "$VENV/.install-seconds") s" >&2
echo "$VENV/bin/python"
