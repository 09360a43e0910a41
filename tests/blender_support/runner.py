"""Test-side plumbing for the Blender tests: the bpy virtualenv, the extension zip, and running a
script inside Blender as a subprocess (Blender's Python has bpy; the test's has the engine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "setup_bpy.sh"
BUILD = ROOT / "nle_addons" / "blender" / "build_extension.py"
HERE = Path(__file__).resolve().parent
INSTALL_TIMEOUT_S = 1800


@dataclass
class BpyEnv:
    python: Path
    install_s: float            # this session's setup call (0-ish when the venv was reused)
    first_install_s: float | None   # what the one-time install took, from its stamp


class SetupFailed(RuntimeError):
    """bpy could not be installed; the message says why (for the skip reason)."""


def ensure_bpy() -> BpyEnv:
    """Run scripts/setup_bpy.sh (idempotent) and return the venv's python."""
    t0 = time.monotonic()
    try:
        proc = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupFailed(f"scripts/setup_bpy.sh did not finish: {exc}") from exc
    if proc.returncode != 0:
        lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith("WARNING: Location")]
        raise SetupFailed("scripts/setup_bpy.sh failed: " + " | ".join(lines[-4:]))
    python = Path(proc.stdout.strip().splitlines()[-1])
    stamp = python.parents[1] / ".install-seconds"
    first = float(stamp.read_text()) if stamp.is_file() else None
    return BpyEnv(python=python, install_s=time.monotonic() - t0, first_install_s=first)


def blender_ext_script(python: Path) -> Path | None:
    """Blender's extension builder (bl_pkg/cli/blender_ext.py), shipped inside the bpy wheel."""
    site = python.parents[1] / "lib"
    found = sorted(site.glob("python3*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    return found[-1] if found else None


def build_zip(python: Path, out_dir: Path) -> Path:
    """The extension zip for this platform, built and validated by Blender's own builder."""
    args = [str(python), str(BUILD), "--out", str(out_dir)]
    ext = blender_ext_script(python)
    if ext is not None:
        args += ["--blender-ext", str(ext)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SetupFailed(f"build_extension.py failed: {(proc.stderr or proc.stdout).strip()[-600:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def run_in_blender(python: Path, script: str, args: dict, work: Path, timeout_s: float = 300) -> subprocess.CompletedProcess:
    """Run tests/blender_support/SCRIPT inside Blender with its own temporary user folders."""
    work.mkdir(parents=True, exist_ok=True)
    args_file = work / f"{Path(script).stem}.args.json"
    args_file.write_text(json.dumps(args))
    env = dict(os.environ)
    env["BLENDER_USER_RESOURCES"] = str(work / "blender-user")
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(python), str(HERE / script), str(args_file)], capture_output=True, text=True,
                          timeout=timeout_s, env=env, cwd=work)
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def engine_executable() -> Path:
    """The engine's console script in the virtualenv running the tests."""
    exe = Path(sys.executable).parent / ("montage-ai.exe" if os.name == "nt" else "montage-ai")
    return exe if exe.is_file() else ROOT / "montage-ai.sh"
