"""The report (storyboard.png, timeline.png, report.html), progress events and --preview, on a
real run over synthetic media whose every shot has its own colour, so a thumbnail can be checked
against the shot the plan chose. One clip has `<script>` in its file name."""

from __future__ import annotations

import html
import inspect
import io
import json
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
from PIL import Image

from media_tools import median_colors, video_facts
from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.demo.synth_video import ClipTruth, ShotSpec, distinct_colors, make_clip
from montage_ai.pipeline import run
from montage_ai.render.conform import render
from montage_ai.report import Progress, make_report, make_report_from_folder, make_storyboard, make_timeline_chart
from montage_ai.report.chart import CUT
from montage_ai.report.preview import preview_settings, preview_spec
from montage_ai.report.progress import EVENT_KINDS
from montage_ai.report.storyboard import BACKGROUND
from montage_ai.settings import Settings
from montage_ai.timeline.model import RenderSettings
from montage_ai.timeline.read import read_timeline

pytestmark = pytest.mark.slow

EVIL_NAME = 'clip_3 <script>alert("x")<!--'       # a file name cannot hold "/", so no closing tag
FPS = 25
COLOR_TOLERANCE = 40     # the "fast" style's grade shifts colours a little (as in test_end_to_end)


@dataclass
class ReportRun:
    root: Path
    out: Path
    truths: dict[str, ClipTruth]
    summary: dict
    timeline: otio.schema.Timeline
    plan_json: dict
    report: Path


_RUNS: dict[Path, ReportRun] = {}


def make_report_run(root: Path) -> ReportRun:
    """A pipeline run plus its report, made once per test session and shared with the browser test."""
    if root in _RUNS:
        return _RUNS[root]
    clips = root / "clips"
    colors = distinct_colors(12)
    truths = {}
    for c in range(4):
        shots = [ShotSpec(duration_s=2.0 + ((c + s) % 3) * 0.8, color=colors[c * 3 + s]) for s in range(3)]
        name = f"{EVIL_NAME}.mp4" if c == 3 else f"clip_{c}.mp4"
        t = make_clip(clips / name, shots, width=480, height=270, fps=str(FPS))
        truths[str(t.path)] = t
    drums = make_drum_track(root / "drums.wav", bpm=120.0, duration_s=22.0,
                            sections=[(0.0, "low"), (8.0, "high"), (16.0, "low")])
    s = Settings(clips=clips, music=drums.path, out=root / "out", style="fast", duration=12.0, music_start=1.5,
                 resolution="360p", cache_dir=root / "cache", seed=1)
    summary = run(s, progress=False)
    timeline = otio.adapters.read_from_file(str(summary.timeline))
    plan_json = json.loads(summary.plan.read_text())
    summary_json = summary.model_dump(mode="json")
    report = make_report(summary.out_dir, timeline, plan_json, summary_json,
                         settings=s.model_dump(mode="json", exclude={"openai_api_key"}))
    _RUNS[root] = ReportRun(root, summary.out_dir, truths, summary_json, timeline, plan_json, report)
    return _RUNS[root]


@pytest.fixture(scope="module")
def rr(tmp_path_factory) -> ReportRun:
    return make_report_run(tmp_path_factory.getbasetemp() / "report-run")


def _truth_color(rr: ReportRun, seg: dict) -> np.ndarray:
    truth = rr.truths[str(Path(seg["source"]))]
    mid = seg["source_in_frame"] + seg["duration_frames"] // 2
    return np.array(truth.shot_colors[truth.shot_at_frame(mid)], float)


def _median(img: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
    return np.median(np.asarray(img.crop(box).convert("RGB")).reshape(-1, 3), axis=0)


# --- storyboard ----------------------------------------------------------------------------------


def test_report_files_exist_and_segments_agree(rr):
    for name in ("report.html", "storyboard.png", "timeline.png", "montage.mp4"):
        assert (rr.out / name).is_file(), name
    clips = rr.timeline.video_tracks()[0].find_clips()
    assert len(clips) == len(rr.plan_json["segments"]) == rr.summary["cuts"]


def test_storyboard_has_one_thumbnail_per_segment_in_order(rr, tmp_path):
    sb = make_storyboard(rr.timeline, tmp_path / "sb.png", thumb_width=200, video=rr.out / "montage.mp4", columns=5)
    img = Image.open(sb.path)
    segs = rr.plan_json["segments"]
    n = len(segs)
    rows = -(-n // 5)
    assert img.size == sb.size
    assert img.size[0] == 10 + 5 * (200 + 10)                # 5 columns of 200 px thumbnails and gaps
    assert len(sb.boxes) == len(sb.thumbnails) == n
    assert all(t is not None and t.size == (200, 112) for t in sb.thumbnails)   # 640x360 -> 200 wide, aspect kept
    assert [(b[0], b[1]) for b in sb.boxes] == sorted({(b[0], b[1]) for b in sb.boxes}, key=lambda p: (p[1], p[0]))
    assert len({b[1] for b in sb.boxes}) == rows
    bg = np.array(BACKGROUND, float)
    for box in sb.boxes:                                     # every box holds a picture ...
        assert np.abs(_median(img, box) - bg).max() > 30
    last = sb.boxes[-1]
    if n % 5:                                                # ... and the rest of the last row is empty
        empty = (last[2] + 10, last[1], img.size[0] - 1, last[3])
        assert np.abs(np.asarray(img.crop(empty), float) - bg).max() == 0


def test_thumbnail_colours_are_the_planned_shots(rr):
    sb = make_storyboard(rr.timeline, rr.out / "storyboard.png", video=rr.out / "montage.mp4")
    img = Image.open(rr.out / "storyboard.png")
    for seg, box in zip(rr.plan_json["segments"], sb.boxes, strict=True):
        got, want = _median(img, box), _truth_color(rr, seg)
        assert np.abs(got - want).max() <= COLOR_TOLERANCE, (seg["index"], seg["source"], got, want)


def test_thumbnails_from_the_sources_match_the_montage(rr, tmp_path):
    """Without a rendered video the frames come from the sources (accurate seek): same shots."""
    sb = make_storyboard(rr.timeline, tmp_path / "sb.png", thumb_width=120, source="sources")
    img = Image.open(sb.path)
    for seg, box in zip(rr.plan_json["segments"], sb.boxes, strict=True):
        assert np.abs(_median(img, box) - _truth_color(rr, seg)).max() <= COLOR_TOLERANCE, seg["index"]


# --- chart ---------------------------------------------------------------------------------------


def _cut_columns(img: Image.Image, box: tuple[int, int, int, int]) -> list[int]:
    """Columns of `box` that are the cut colour over at least 80 % of its rows."""
    a = np.asarray(img.convert("RGB"))[box[1]:box[3], :, :]
    hit = (a == np.array(CUT, np.uint8)).all(axis=2).mean(axis=0)
    return [int(x) for x in np.flatnonzero(hit >= 0.8)]


@pytest.mark.parametrize("with_music", [True, False], ids=["music-analysis", "output-folder-alone"])
def test_chart_has_a_cut_line_at_every_planned_cut_and_nowhere_else(rr, tmp_path, with_music):
    music = None
    if with_music:
        from montage_ai.analysis.music import analyze_music

        music = analyze_music(Path(rr.plan_json["analysis"]["music"]["path"]), 1.5)
    chart = make_timeline_chart(rr.timeline, music, tmp_path / "chart.png", video=rr.out / "montage.mp4", width=1200)
    img = Image.open(chart.path)
    assert img.size == chart.size and img.size[0] == 1200 and 250 < img.size[1] < 500
    total = rr.summary["frames"]
    x0, x1 = chart.plot_x0, chart.plot_x1
    planned = [x0 + round(s["record_start_frame"] * (x1 - x0) / total) for s in rr.plan_json["segments"][1:]]
    assert _cut_columns(img, chart.music_box) == planned
    assert _cut_columns(img, chart.bar_box) == planned
    # one colour per source in the segment bar, the same one wherever a source returns
    a = np.asarray(img.convert("RGB"))
    y = (chart.bar_box[1] + chart.bar_box[3]) // 2
    colour_of: dict[str, tuple] = {}
    for s in rr.plan_json["segments"]:
        mid = x0 + round((s["record_start_frame"] + s["duration_frames"] / 2) * (x1 - x0) / total)
        c = tuple(int(v) for v in a[y + 8, mid])
        assert colour_of.setdefault(s["source"], c) == c
    assert len(set(colour_of.values())) == len(colour_of)


# --- page ----------------------------------------------------------------------------------------


def test_page_is_self_contained_and_escapes_untrusted_text(rr):
    page = rr.report.read_text()
    assert len(re.findall(r"<script\b", page)) == 1                   # only ours, with its nonce
    assert "<script>alert" not in page and "&lt;script&gt;alert(&quot;x&quot;)" in page   # the evil file name
    assert re.search(r"""(src|href)=["']?(https?:)?//""", page) is None   # nothing fetched from anywhere
    assert "default-src 'none'" in html.unescape(page)
    assert 'src="montage.mp4"' in page
    assert page.count('class="seg"') == len(rr.plan_json["segments"])
    assert page.count("data:image/jpeg;base64,") == len(rr.plan_json["segments"])
    assert "openai_api_key" not in page
    for stage in rr.summary["stages_s"]:
        assert f"<tr><td>{stage}</td>" in page
    for line in rr.plan_json["plan"]["rationale"]:
        assert line.replace("&", "&amp;") in page


def evil_report(rr: ReportRun, folder: Path) -> Path:
    """The run's report with the LLM's reason and the brief turned into HTML/JS injections."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "montage.mp4").unlink(missing_ok=True)
    (folder / "montage.mp4").symlink_to(rr.out / "montage.mp4")
    timeline = otio.adapters.read_from_string(otio.adapters.write_to_string(rr.timeline, "otio_json"), "otio_json")
    clip = timeline.video_tracks()[0].find_clips()[0]
    meta = dict(clip.metadata["montage_ai"])
    meta["reason"] = '</td></tr></table><script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    clip.metadata["montage_ai"] = meta
    plan_json = json.loads(json.dumps(rr.plan_json))
    plan_json["director"]["brief"] = "<iframe src=https://example.com></iframe>'\"&"
    plan_json["plan"]["rationale"] = ["<style>body{display:none}</style>"]
    return make_report(folder, timeline, plan_json, rr.summary)


def test_page_escapes_an_injected_reason_and_brief(rr, tmp_path):
    page = evil_report(rr, tmp_path / "evil").read_text()
    assert len(re.findall(r"<script\b", page)) == 1
    assert "<img src=x" not in page and "<iframe" not in page and "<style>body" not in page
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in page
    assert "&lt;iframe src=https://example.com&gt;&lt;/iframe&gt;&#x27;&quot;&amp;" in page


def test_report_from_the_output_folder_alone(rr, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("montage.otio", "plan.json", "montage.mp4"):
        shutil.copy2(rr.out / name, folder / name)
    path = make_report_from_folder(folder)
    page = path.read_text()
    assert page.count('class="seg"') == len(rr.plan_json["segments"])
    assert (folder / "storyboard.png").is_file() and (folder / "timeline.png").is_file()
    assert page.count("data:image/jpeg;base64,") == len(rr.plan_json["segments"])


def test_embedded_video_when_asked(rr, tmp_path):
    folder = tmp_path / "embed"
    folder.mkdir()
    for name in ("montage.otio", "plan.json", "montage.mp4"):
        shutil.copy2(rr.out / name, folder / name)
    page = make_report_from_folder(folder, embed_video=True).read_text()
    assert 'src="data:video/mp4;base64,' in page
    page = make_report_from_folder(folder, embed_video=True, max_embed_bytes=1000).read_text()
    assert 'src="montage.mp4"' in page and "is linked, not embedded" in page


# --- hostile file names --------------------------------------------------------------------------

HOSTILE_NAMES = ["new\nline.mp4", "esc\x1b[2J.mp4", "tab\there.mp4", "line\u2028sep.mp4", "<b>&amp.mp4"]


def _named_timeline(root: Path) -> otio.schema.Timeline:
    """One second of a clip per hostile name, cut one after the other at 25 fps."""
    colors = distinct_colors(len(HOSTILE_NAMES))
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for i, (name, color) in enumerate(zip(HOSTILE_NAMES, colors)):
        path = make_clip(root / "clips" / name, [ShotSpec(duration_s=1, color=color)], width=160, height=90).path
        video.append(otio.schema.Clip(
            name=f"{i:03d} {name}", media_reference=otio.schema.ExternalReference(target_url=str(path)),
            source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, FPS), otio.opentime.RationalTime(12, FPS)),
            metadata={"montage_ai": {"index": i, "beats": 1, "reason": f"from {name}"}}))
    tl = otio.schema.Timeline(name="names\nwith\rbreaks")
    tl.tracks.append(video)
    tl.metadata["montage_ai"] = {"render": {"width": 320, "height": 180, "fps_num": FPS, "fps_den": 1}}
    return tl


def test_report_draws_and_shows_hostile_names_on_one_line(tmp_path):
    """A newline in a clip's name made Pillow refuse to measure the storyboard's text (so no
    report); HTML would show it as a space. Every name is drawn and shown as one visible line."""
    out = tmp_path / "out"
    out.mkdir()
    tl = _named_timeline(tmp_path)
    skipped = f"{tmp_path}/clips/bad\nname.mp4: cannot read media"
    page_path = make_report(out, tl, {}, {"skipped": [skipped]})
    sb = Image.open(out / "storyboard.png")
    assert sb.size[0] > 0 and (out / "timeline.png").is_file()
    page = page_path.read_text(encoding="utf-8")
    for shown in ("new\\nline.mp4", "esc\\x1b[2J.mp4", "tab\\there.mp4", "line\\u2028sep.mp4",
                  "&lt;b&gt;&amp;amp.mp4", "bad\\nname.mp4"):
        assert shown in page, shown
    names = re.findall(r'<span class="src" title="([^"]*)">([^<]*)</span>', page)
    assert len(names) == len(HOSTILE_NAMES)
    assert not any(ch in text for pair in names for text in pair for ch in "\n\r\x1b\u2028")


def test_storyboard_and_chart_text_is_one_line():
    from montage_ai.report.storyboard import fit_text, font
    from PIL import ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    assert fit_text(draw, "a\nb\rc\x1b", font(12), 500) == "a\\nb\\rc\\x1b"
    assert fit_text(draw, "new\nline" * 20, font(12), 80).endswith("…")


# --- progress ------------------------------------------------------------------------------------


def _events(text: str) -> list[dict]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    events = [json.loads(ln) for ln in lines]           # every line is one JSON object
    for ev in events:
        assert {"event", "stage", "done", "total", "message", "t"} <= set(ev), ev
        assert ev["event"] in EVENT_KINDS
    assert [ev["t"] for ev in events] == sorted(ev["t"] for ev in events)
    return events


def test_progress_json_lines_from_threads():
    buf = io.StringIO()
    p = Progress("json", stream=buf, min_interval_s=0.0)
    names = ["probe", "music", "clips", "render"]
    for name in names:
        with p.stage(name):
            bar = p.bar(f"{name} work", total=400, unit="item")
            threads = [threading.Thread(target=lambda b=bar: [b.update() for _ in range(100)]) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            bar.close()
            p.warning(f"{name} says hi")
    p.done({"cuts": 3})
    events = _events(buf.getvalue())
    for name in names:
        kinds = [ev["event"] for ev in events if ev["stage"] == name]
        assert kinds[0] == "stage_start" and kinds[-1] == "stage_end" and "warning" in kinds
        counts = [ev["done"] for ev in events if ev["stage"] == name and ev["event"] == "progress"]
        assert counts == sorted(counts) and counts[-1] == 400
    assert events[-1]["event"] == "done" and events[-1]["summary"] == {"cuts": 3}
    assert set(p.stages_s) == set(names)


def test_progress_error_event_and_modes(capsys):
    buf = io.StringIO()
    p = Progress("json", stream=buf)
    with pytest.raises(ValueError):
        with p.stage("render"):
            raise ValueError("ffmpeg said no")
    ev = _events(buf.getvalue())[-1]
    assert ev["event"] == "error" and ev["stage"] == "render" and ev["message"] == "ffmpeg said no"
    capsys.readouterr()
    for mode in ("quiet", "bars"):
        q = Progress(mode)
        with q.stage("clips"):
            with q.bar("analyse clips", total=3, unit="clip") as bar:
                bar.update(3)
        out, err = capsys.readouterr()
        assert out == ""                           # stdout stays for the summary (and JSON lines)
        assert (err == "") == (mode == "quiet")
    assert Progress.from_flags(quiet=True, json_lines=True).mode == "json"


def test_progress_json_covers_every_pipeline_stage(rr, tmp_path):
    annotation = str(inspect.signature(run).parameters["progress"].annotation)
    if "Progress" not in annotation:
        pytest.skip("pipeline.run does not report through montage_ai.report.progress yet (progress: "
                    f"{annotation}); this test runs once it takes a Progress")
    buf = io.StringIO()
    s = Settings(clips=rr.root / "clips", music=rr.root / "drums.wav", out=tmp_path / "out", style="fast",
                 duration=12.0, music_start=1.5, resolution="360p", cache_dir=rr.root / "cache", seed=1)
    summary = run(s, progress=Progress("json", stream=buf))
    events = _events(buf.getvalue())
    for stage in summary.stages_s:
        kinds = {ev["event"] for ev in events if ev["stage"] == stage}
        assert {"stage_start", "stage_end"} <= kinds, stage
    assert any(ev["event"] == "progress" and ev["stage"] == "render" for ev in events)


# --- preview -------------------------------------------------------------------------------------


def test_preview_settings_are_small_fast_and_keep_the_rate():
    full = RenderSettings(width=1920, height=1080, fps_num=30000, fps_den=1001, crf=18, preset="medium", fit="pad")
    p = preview_settings(full)
    assert (p.width, p.height) == (640, 360) and p.fps == full.fps
    assert p.preset == "ultrafast" and p.crf >= 30 and p.fit == "pad"
    for w, h in [(1080, 1920), (1080, 1350), (854, 480), (640, 360), (3840, 2160)]:
        q = preview_settings(RenderSettings(width=w, height=h, fps_num=24))
        assert q.width % 2 == 0 and q.height % 2 == 0
        assert q.width * q.height <= w * h / 4 + 2 * (q.width + q.height) and min(q.width, q.height) <= 360
        assert abs(q.width / q.height - w / h) < 0.02


def test_preview_render_is_the_same_cut(rr, tmp_path):
    spec = read_timeline(rr.timeline, base_dir=rr.out)
    small = preview_spec(spec)
    assert small.total_frames == spec.total_frames and small.pieces == spec.pieces
    out = tmp_path / "preview.mp4"
    render(small, out, tmp_path / "cache", workers=2)
    n, rate, _, _ = video_facts(out)
    assert n == rr.summary["frames"] and rate == FPS
    full, prev = median_colors(rr.out / "montage.mp4"), median_colors(out)
    assert full.shape == prev.shape
    assert np.abs(full - prev).max(axis=1).max() <= 30       # every frame shows the same shot

