"""The Kdenlive clip job: the installer edits Kdenlive's clipjobsettings.rc (in a temporary
config dir), and the wrapper is run exactly as Kdenlive's CustomJobTask runs it: the template is
split on spaces, {source}/{output}/{param1}/{param2} are substituted into the tokens, the output
path is the clip's folder + base name + the job's extension, and progress is read from
`percentage: N` lines on stderr. It must leave a valid montage there, or nothing."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import opentimelineio as otio
import pytest
from blender_support.runner import engine_executable
from media_tools import video_facts
from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip

ROOT = Path(__file__).resolve().parents[1]
KDEN = ROOT / "nle_addons" / "kdenlive"
WRAPPER = KDEN / "montage-ai-kdenlive-job"
VIDEO_JOB = "{e3deab1c-d742-5cb0-9980-ac6b6e7e50fb}"
TIMELINE_JOB = "{4ebb708e-c4f9-56bf-b1e2-d31b3c6a43a5}"


def _load(name: str, path: Path):
    from importlib.machinery import SourceFileLoader

    loader = SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


installer = _load("kdenlive_install", KDEN / "install.py")
job = _load("kdenlive_job", WRAPPER)


# --- the installer -------------------------------------------------------------------------------

USER_RC = """#Built in jobs have no name
[Ids]
stabilize=
custom=My Custom job
{aaaa}=Proxy to ProRes

[Binary]
{aaaa}=/usr/bin/ffmpeg

[FolderUse]
stabilize=rootfolder
"""


def test_installer_writes_updates_and_uninstalls(tmp_path):
    cfg = tmp_path / "kdenlive config"
    msg = installer.apply(cfg)
    rc = cfg / "clipjobsettings.rc"
    assert "installed" in msg and rc.is_file()
    e = installer.entries(rc.read_text())
    for jid, ext in ((VIDEO_JOB, "montage.mp4"), (TIMELINE_JOB, "montage.mlt")):
        assert e["Ids"][jid].startswith("Montage AI")
        assert e["Binary"][jid] == str(WRAPPER.resolve())
        assert e["Parameters"][jid] == "--source {source} --output {output} --music {param1} --preset {param2}"
        assert e["Output"][jid] == ext and e["Param1Type"][jid] == "file" and e["Param2Type"][jid] == "list"
        assert "fast 15s" in e["Param2List"][jid].split("  ")
    assert os.access(WRAPPER, os.X_OK)
    # again: nothing changes, no backup
    assert "already up to date" in installer.apply(cfg)
    assert sorted(p.name for p in cfg.iterdir()) == ["clipjobsettings.rc"]
    # an engine path becomes a flag token; the change is backed up first
    installer.apply(cfg, engine="/opt/montage/bin/montage-ai")
    e = installer.entries(rc.read_text())
    assert e["Parameters"][VIDEO_JOB].endswith("--engine /opt/montage/bin/montage-ai")
    assert len(list(cfg.glob("clipjobsettings.rc.montage-ai-backup-*"))) == 1
    with pytest.raises(SystemExit, match="without spaces"):
        installer.apply(cfg, engine="/opt/my montage/montage-ai")
    # uninstall: the file held only our jobs, so it goes
    assert "removed" in installer.apply(cfg, uninstall=True)
    assert not rc.exists()
    assert "already clean" in installer.apply(cfg, uninstall=True)


def test_installer_keeps_the_users_own_jobs_and_comments(tmp_path):
    rc = tmp_path / "clipjobsettings.rc"
    rc.write_text(USER_RC)
    installer.apply(tmp_path)
    text = rc.read_text()
    assert text.startswith("#Built in jobs have no name\n[Ids]\nstabilize=\ncustom=My Custom job\n{aaaa}=Proxy to ProRes\n")
    e = installer.entries(text)
    assert e["Binary"]["{aaaa}"] == "/usr/bin/ffmpeg" and e["FolderUse"]["stabilize"] == "rootfolder"
    assert VIDEO_JOB in e["Ids"] and e["FolderUse"][VIDEO_JOB] == "rootfolder"
    backups = list(tmp_path.glob("clipjobsettings.rc.montage-ai-backup-*"))
    assert len(backups) == 1 and backups[0].read_text() == USER_RC
    installer.apply(tmp_path, uninstall=True)
    assert installer.entries(rc.read_text()) == installer.entries(USER_RC)
    assert "#Built in jobs have no name" in rc.read_text()


def test_default_config_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    if os.name != "nt" and not str(installer.sys.platform).startswith("darwin"):
        assert installer.default_config_dir() == tmp_path / "data" / "kdenlive"


def test_presets_are_simple_tokens():
    assert job.parse_preset("fast 15s 9:16 720p") == {"style": "fast", "duration": "15", "aspect": "9:16",
                                                      "resolution": "720p"}
    assert job.parse_preset("") == {}
    with pytest.raises(job.JobError):
        job.parse_preset("fast; rm -rf")


# --- the wrapper, run as Kdenlive runs it -------------------------------------------------------

def kdenlive_runs(rc_text: str, job_id: str, source: Path, param1: str, param2: str) -> tuple[list[str], Path]:
    """argv and output path exactly as Kdenlive's CustomJobTask::run builds them."""
    e = installer.entries(rc_text)
    binary, template = e["Binary"][job_id], e["Parameters"][job_id]
    ext = e["Output"].get(job_id) or source.suffix.lstrip(".")
    ext = ext if ext.startswith(".") else "." + ext
    base = source.name.split(".")[0]                       # QFileInfo::baseName(): up to the first dot
    dest = source.parent / (base + ext)
    if dest.exists():
        dest = source.parent / (base + "-0001" + ext)
    args, placed = [], False
    for token in [t for t in template.split(" ") if t]:    # split BEFORE substitution, empty parts skipped
        if "{output}" in token:
            token, placed = token.replace("{output}", str(dest)), True
        token = token.replace("{source}", str(source)).replace("{param1}", param1).replace("{param2}", param2)
        args.append(token)
    if not placed:
        args.append(str(dest))
    return [binary, *args], dest


def _percentages(stderr: str) -> list[int]:
    return [int(line.split("percentage:")[1].split()[0]) for line in stderr.splitlines() if "percentage:" in line]


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    root = tmp_path_factory.mktemp("kdenlive job")
    clips = root / "my footage"
    colors = distinct_colors(8)
    for c in range(4):
        make_clip(clips / f"clip {c}.mp4", [ShotSpec(duration_s=2.4, color=colors[2 * c]),
                                            ShotSpec(duration_s=2.4, color=colors[2 * c + 1])],
                  width=320, height=180, fps="25")
    (root / "music folder").mkdir()
    song = make_drum_track(root / "music folder" / "our song.wav", bpm=120.0, duration_s=14.0)
    cfg = root / "config"
    installer.apply(cfg)
    return clips, song.path, (cfg / "clipjobsettings.rc").read_text()


def _run_as_kdenlive(argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "MONTAGE_AI_ENGINE": str(engine_executable())}
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_video_job_returns_a_montage_with_progress(footage):
    clips, song, rc_text = footage
    argv, dest = kdenlive_runs(rc_text, VIDEO_JOB, clips / "clip 1.mp4", str(song), "fast 8s")
    assert dest == clips / "clip 1.montage.mp4"
    proc = _run_as_kdenlive(argv)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pct = _percentages(proc.stderr)
    assert pct[0] == 0 and pct[-1] == 100 and pct == sorted(pct) and len(set(pct)) >= 4, pct
    frames, rate, vdur, adur = video_facts(dest)
    assert rate == 25 and frames == 200 and abs(adur - vdur) <= 1 / 25
    # the job cut the folder's clips, not its own earlier outputs
    timeline = otio.adapters.read_from_file(str(clips / "clip 1.montage-montage-ai" / "out" / "montage.otio"))
    sources = {c.media_reference.target_url for c in timeline.video_tracks()[0].find_clips()}
    assert sources and all(Path(s).parent == clips and ".montage" not in s for s in sources)
    # a second run: Kdenlive picks a new name, and the first montage is not among the clips
    argv2, dest2 = kdenlive_runs(rc_text, VIDEO_JOB, clips / "clip 1.mp4", str(song), "dynamic 6s")
    assert dest2 == clips / "clip 1-0001.montage.mp4"
    staged = job.stage_clips(clips / "clip 1.mp4", clips / "probe-staging")
    assert sorted(p.name for p in staged.iterdir()) == [f"clip {c}.mp4" for c in range(4)]
    shutil.rmtree(clips / "probe-staging")


@pytest.mark.slow
def test_timeline_job_returns_a_playlist_that_melt_renders(footage, tmp_path):
    clips, song, rc_text = footage
    argv, dest = kdenlive_runs(rc_text, TIMELINE_JOB, clips / "clip 2.mp4", str(song), "dynamic 6s 720p")
    assert dest == clips / "clip 2.montage.mlt"
    proc = _run_as_kdenlive(argv)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pct = _percentages(proc.stderr)
    assert pct[-1] == 100 and pct == sorted(pct)
    timeline = otio.adapters.read_from_file(str(clips / "clip 2.montage-montage-ai" / "out" / "montage.otio"))
    frames = int(timeline.duration().value)
    assert frames == 150
    kdenlive = tmp_path / "copy.kdenlive"              # the same file opens as a project
    shutil.copyfile(dest, kdenlive)
    back = otio.adapters.read_from_file(str(kdenlive))
    assert [c.source_range for c in back.video_tracks()[0].find_clips()] == \
        [c.source_range for c in timeline.video_tracks()[0].find_clips()]
    if shutil.which("melt") is None:
        pytest.skip("melt is not installed (apt-get install melt); the playlist was checked without it")
    out = tmp_path / "melt.mp4"
    r = subprocess.run(["melt", str(dest), "-consumer", f"avformat:{out}", "vcodec=libx264", "acodec=aac"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    n, rate, _, _ = video_facts(out)
    assert rate == 25 and n == frames


def test_a_failed_job_leaves_no_output_and_says_why(footage):
    clips, song, rc_text = footage
    argv, dest = kdenlive_runs(rc_text, VIDEO_JOB, clips / "clip 3.mp4", str(song), "fast 8s; nope")
    proc = _run_as_kdenlive(argv)
    assert proc.returncode != 0 and not dest.exists()
    assert "montage-ai-kdenlive-job: error:" in proc.stderr
