"""Bad settings and a hostile environment through the real command line: one line naming the
flag, variable or file and the reason, a non-zero exit, no traceback, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hostile import PROJECT, assert_clean, cli, sha256_tree, small_media, temp_files

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return small_media(tmp_path_factory.mktemp("settings"), clips=1, music_s=8)


def _run(media, out: Path, *extra: str, env: dict[str, str] | None = None, cache: Path):
    clips, music = media
    return cli("run", "--clips", clips, "--music", music, "--out", out, "--resolution", "360p", *extra,
               cache=cache, env=env)


@pytest.mark.parametrize("extra, env, needles", [
    (["--duration", "-5"], None, ("--duration", "-5", "greater than 0")),
    (["--duration", "nan"], None, ("--duration", "nan", "finite")),
    (["--duration", "inf"], None, ("--duration", "inf", "finite")),
    (["--music-start", "-3"], None, ("--music-start", "-3")),
    (["--crf", "99"], None, ("--crf", "99", "51")),
    (["--variants", "0"], None, ("--variants", "0")),
    (["--prompt", "x" * 5000], None, ("--prompt", "at most 4000 characters", "5,000")),
    (["--fps", "abc"], None, ("--fps", "not a frame rate")),
    (["--fps", "1/0"], None, ("--fps", "not a frame rate")),
    (["--fps", "10000"], None, ("--fps", "outside 1-240")),
    (["--preset", "placebo;rm -rf /"], None, ("--preset",)),
    (["--export", "kdenlive,aaf"], None, ("--export", "aaf", "unknown")),
    ([], {"MONTAGE_DURATION": "abc"}, ("MONTAGE_DURATION", "abc", "number")),
    ([], {"CGPU_PORT": "notaport"}, ("CGPU_PORT", "notaport", "integer")),
    ([], {"CGPU_PORT": "70000"}, ("CGPU_PORT", "70000", "65535")),
    ([], {"MEMORY_LIMIT_GB": "-1"}, ("MEMORY_LIMIT_GB",)),
    ([], {"MAX_PARALLEL_JOBS": "0"}, ("MAX_PARALLEL_JOBS",)),
])
def test_bad_settings_are_one_line(media, tmp_path, extra, env, needles):
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = _run(media, out, *extra, env=env, cache=cache)
    assert_clean(result, needles=needles, written=(out, cache), sources=sha256_tree(*media), max_seconds=60)
    assert not (out / "montage.mp4").exists()


def test_doctor_with_a_bad_setting_is_one_line(tmp_path):
    result = cli("doctor", cache=tmp_path / "cache", env={"CGPU_PORT": "notaport"})
    assert_clean(result, needles=("CGPU_PORT", "notaport"))


def test_cache_folder_that_cannot_be_made(media, tmp_path):
    out = tmp_path / "out"
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for cache, needles in ((Path("/proc/montage-cache"), ("MONTAGE_CACHE_DIR", "/proc/montage-cache")),
                           (blocker, ("MONTAGE_CACHE_DIR", "a-file", "not a folder")),
                           (blocker / "sub", ("MONTAGE_CACHE_DIR", "a-file"))):
        result = _run(media, out, cache=cache)
        assert_clean(result, needles=needles, written=(out,), sources=sha256_tree(*media), max_seconds=60)


@pytest.fixture
def small_disk(tmp_path):
    """A 40 MiB tmpfs: a disk that fills up. Needs root (or a user namespace) to mount."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root): the disk-full case is not run")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_during_the_report(media, small_disk, tmp_path):
    """The montage is written, then the disk fills while the report is made: one line naming
    the file that could not be written, no partial file, the montage itself intact."""
    clips, music = media
    out, cache = small_disk / "out", tmp_path / "cache"
    sources = sha256_tree(clips, music)
    env = {**os.environ, "MONTAGE_CACHE_DIR": str(cache)}
    proc = subprocess.Popen([sys.executable, "-m", "montage_ai.cli", "--json", "run", "--clips", str(clips), "--music",
                             str(music), "--out", str(out), "--resolution", "360p", "--duration", "4"],
                            cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        ev = json.loads(line)
        if ev["event"] == "stage_start" and ev["stage"] == "report":
            os.kill(proc.pid, signal.SIGSTOP)       # hold it while the disk fills up
            filler = small_disk / "filler"
            with open(filler, "wb") as fh:
                try:
                    while True:
                        fh.write(b"\0" * (1 << 20))
                except OSError:
                    pass
            os.kill(proc.pid, signal.SIGCONT)
            break
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Traceback" not in stderr, stderr
    errors = [ln for ln in stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and "No space left on device" in errors[0] and str(out) in errors[0], stderr
    assert temp_files(out, cache) == []
    assert (out / "montage.mp4").stat().st_size > 10000
    assert sha256_tree(clips, music) == sources
