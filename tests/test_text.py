"""Text on screen (titles, credits, lower thirds): found in the analysis pass and left out of
the cut unless the plan asks for titles.

Ground truth: a generated corpus whose sections are known (a title card fading in, a lower
third, a credits roll, a small 'presents' line, and sections without text), drawn with
Pillow's built-in font over moving real footage from ../shared/media, or over ffmpeg's
moving test patterns where that folder is absent; Big Buck Bunny's real opening (its
'presents' line and its title); and real footage without any text.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

import plan_fixtures as fx
from conftest import SHARED_MEDIA
from media_tools import decode_frames
from montage_ai.analysis.on_screen import TEXT_EVERY_S, TextRange, burned_in, text_on_screen
from montage_ai.analysis.shots import analyze_clip
from montage_ai.direct.presets import load_style
from montage_ai.media.ffmpeg import ffmpeg_path, run_ffmpeg
from montage_ai.media.probe import probe
from montage_ai.plan.craft import craft_report
from montage_ai.plan.cutter import cut

W, H, RATE = 640, 360, 25
FPS = Fraction(25)


def _font(px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=px)


def _lines(img: np.ndarray, lines: list[str], px: int, y: float | None = None, bar: bool = False,
           alpha: float = 1.0) -> np.ndarray:
    """`lines` centred (or at height y, left, over a bar: a lower third), white."""
    im = Image.fromarray(img)
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    top = H / 2 - len(lines) * px * 0.7 if y is None else y
    if bar:
        d.rectangle((30, top - 8, 360, top + len(lines) * px * 1.4 + 4), fill=(20, 40, 120, int(255 * alpha)))
    for n, text in enumerate(lines):
        x = (W - d.textlength(text, font=_font(px))) / 2 if y is None else 44
        d.text((x, top + n * px * 1.4), text, font=_font(px), fill=(255, 255, 255, int(255 * alpha)))
    return np.asarray(Image.alpha_composite(im.convert("RGBA"), layer).convert("RGB"))


def _backgrounds(folder: Path, media: Path | None) -> list[list[np.ndarray]]:
    """Four moving backgrounds, 3-4 s each: real footage where ../shared/media is here, else
    ffmpeg's moving patterns."""
    out = []
    sources = ([("bottle-detection.mp4", 2.0), ("car-detection.mp4", 6.0), ("one-by-one-person-detection.mp4", 20.0),
                ("big_buck_bunny_0_30.webm", 7.0)] if media else
               [(f"{name}=s={W}x{H}:r={RATE}{seed}", 0)  # seeded: the same pictures every run
                for name, seed in (("mandelbrot", ""), ("life", ":seed=5"), ("cellauto", ":seed=5"), ("zoneplate", ""))])
    for k, (name, start) in enumerate(sources):
        clip = folder / f"bg{k}.mp4"
        src = ["-ss", str(start), "-i", str(media / name)] if media else ["-f", "lavfi", "-i", name]
        run_ffmpeg([*src, "-t", "4", "-vf", f"scale={W}:{H},fps={RATE}", "-an", "-c:v", "libx264", "-crf", "16",
                    "-pix_fmt", "yuv420p", str(clip)], what="background")
        out.append(decode_frames(clip, W, H))
    return out


# (section, seconds, background, has text)
SECTIONS = [("footage", 3.0, 0, False), ("title card", 3.0, None, True), ("lower third", 3.0, 1, True),
            ("footage", 3.0, 2, False), ("credits roll", 4.0, None, True), ("presents", 3.0, 3, True),
            ("footage", 3.0, 0, False)]


def make_text_corpus(path: Path, media: Path | None) -> list[tuple[float, float, str, bool]]:
    """Write the corpus; return its sections as (start s, end s, name, has text)."""
    bgs = _backgrounds(path.parent, media)
    proc = subprocess.Popen([ffmpeg_path(), "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                             "-s", f"{W}x{H}", "-r", str(RATE), "-i", "pipe:0", "-c:v", "libx264", "-crf", "18",
                             "-g", "50", "-pix_fmt", "yuv420p", str(path)], stdin=subprocess.PIPE)
    truth, t = [], 0.0
    credits = ["Directed by Ana Lopez", "Camera Tom Weiss", "Music Karissa Hobbs", "Edit Montage AI",
               "Sound Jo Park", "Colour Lea Stein", "Thanks to everyone"]
    gradient = np.repeat(np.linspace(10, 70, H).astype(np.uint8)[:, None, None], W, axis=1).repeat(3, axis=2)
    for name, seconds, bg, _ in SECTIONS:
        n = int(seconds * RATE)
        for i in range(n):
            frame = bgs[bg][i % len(bgs[bg])] if bg is not None else gradient
            if name == "title card":
                frame = _lines(frame, ["MIDNIGHT", "RUNNERS"], 64, alpha=min(1.0, i / 12))
            elif name == "lower third":
                frame = _lines(frame, ["Maria Schmidt", "Head of Research"], 20, y=270, bar=True)
            elif name == "credits roll":
                frame = _lines(np.zeros_like(frame), credits, 20, y=H - 60 - i * 3.0)
            elif name == "presents":
                frame = _lines(frame, ["THE PEACH OPEN MOVIE PROJECT", "PRESENTS"], 17)
            assert proc.stdin is not None
            proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        truth.append((t, t + seconds, name, name not in ("footage",)))
        t += seconds
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=120) == 0
    return truth


def _covered(ranges: list[TextRange], a: float, b: float) -> float:
    return sum(max(0.0, min(b, r.end_s) - max(a, r.start_s)) for r in ranges) / (b - a)


@pytest.mark.parametrize("real", [True, False], ids=["over real footage", "over test patterns"])
def test_text_sections_are_found_and_footage_is_not(real, tmp_path, request):
    media = None
    if real:
        media = request.getfixturevalue("shared_media")
    truth = make_text_corpus(tmp_path / "corpus.mp4", media)
    analysis = analyze_clip(probe(tmp_path / "corpus.mp4"), 0)
    found = [(round(r.start_s, 2), round(r.end_s, 2), r.share) for r in analysis.text]
    print("\ntext ranges", found)
    for a, b, name, has_text in truth:
        share = _covered(analysis.text, a, b)
        print(f"{name:13s} {a:5.1f}-{b:5.1f} s: {100 * share:3.0f}% flagged")
        if has_text:
            assert share >= 0.6, f"{name} at {a}-{b} s: only {share:.0%} flagged as text"
        else:   # at most a sampling step next to a text section (where its boundary is read late)
            assert share * (b - a) <= TEXT_EVERY_S + 1e-6, f"{name} at {a}-{b} s: {share:.0%} flagged as text"


@pytest.mark.real_media
def test_big_buck_bunny_title_and_presents_are_text_and_real_footage_is_not(shared_media):
    bbb = analyze_clip(probe(shared_media / "big_buck_bunny_0_30.webm"), 0)
    print("\nBig Buck Bunny text", [(r.start_s, r.end_s, r.share) for r in bbb.text])
    assert _covered(bbb.text, 23.5, 29.5) == 1.0          # the title, fading in and out
    assert _covered(bbb.text, 21.0, 22.9) == 1.0          # 'The Peach Open Movie Project presents'
    assert _covered(bbb.text, 0.0, 19.5) == 0.0
    title = next(s for s in bbb.shots if s.start_s <= 26.0 < s.end_s)
    assert title.text >= 0.5
    for name in ("car-detection.mp4", "bottle-detection.mp4", "one-by-one-person-detection.mp4", "sintel_2s.mp4"):
        a = analyze_clip(probe(shared_media / name), 0)
        assert a.text == [], f"{name}: {a.text}"


def _clips_with_text() -> list:
    """Eight clips of three shots: the first shot of each is a title (4 s), the second holds a
    lower third over its last 2 s."""
    clips = [fx.clip(i, [4.0, 5.0, 6.0]) for i in range(8)]
    return [c.model_copy(update={"text": [TextRange(start_s=c.shots[0].start_s, end_s=c.shots[0].end_s, share=0.05),
                                          TextRange(start_s=c.shots[1].end_s - 2.0, end_s=c.shots[1].end_s, share=0.01)]})
            for c in clips]


def _shows_text(cl, clips) -> list[int]:
    text = {c.media.path: [(r.start_s * 25, r.end_s * 25) for r in c.text] for c in clips}
    return [s.index for s in cl.segments
            if any(s.source_in_frame < b and a < s.source_in_frame + s.duration_frames for a, b in text[s.source])]


def test_the_cutter_leaves_text_out_opens_on_it_or_takes_it_as_the_plan_says():
    m = fx.music()
    clips = _clips_with_text()
    for seed in range(4):
        avoid = cut(m, clips, load_style("dynamic"), FPS, 30.0, seed=seed)
        assert _shows_text(avoid, clips) == []
        opened = cut(m, clips, load_style("dynamic").model_copy(update={"titles": "open"}), FPS, 30.0, seed=seed)
        assert _shows_text(opened, clips) == [0]
    report = craft_report(avoid, clips, m)
    assert report.text_ranges == 16 and report.text_seconds == 48.0 and report.segments_with_text == 0
    assert any("text on screen" in line and "segments showing it: 0" in line for line in report.lines())
    allowed = [cut(m, clips, load_style("dynamic").model_copy(update={"titles": "allow"}), FPS, 30.0, seed=s)
               for s in range(4)]
    assert any(_shows_text(cl, clips) for cl in allowed)


def test_footage_that_is_all_text_is_still_cut_and_the_summary_says_so():
    m = fx.music()
    clips = [c.model_copy(update={"text": [TextRange(start_s=0.0, end_s=20.0, share=0.1)]})
             for c in (fx.clip(i, [4.0, 5.0, 6.0]) for i in range(3))]
    cl = cut(m, clips, load_style("dynamic"), FPS, 20.0, seed=1)
    assert cl.segments and any("text on screen" in w for w in cl.warnings)


def test_without_the_detector_the_analysis_goes_on_and_says_so(tmp_path, monkeypatch):
    """onnxruntime missing (a platform without its wheel): no text ranges, one warning naming why."""
    from montage_ai.analysis import text

    monkeypatch.setattr(text._Detector, "_failure", ImportError("No module named 'onnxruntime'"))
    monkeypatch.setattr(text._Detector, "_instance", None)
    clip = tmp_path / "c.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", f"mandelbrot=s={W}x{H}:r={RATE}", "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                str(clip)], what="clip")
    a = analyze_clip(probe(clip), 0)
    assert a.text == [] and a.shots
    assert any("text on screen not detected" in w and "onnxruntime" in w for w in a.warnings)


def test_the_titles_flag_and_variable_win_over_the_plan(monkeypatch, capsys):
    from montage_ai.cli import build_parser, main, settings_from
    from montage_ai.direct.llm import direct

    m = fx.music()
    args = build_parser().parse_args(["run", "--clips", ".", "--music", "x.ogg", "--titles", "open"])
    assert direct(settings_from(args), m, []).plans[0].titles == "open"
    monkeypatch.setenv("MONTAGE_TITLES", "allow")
    args = build_parser().parse_args(["run", "--clips", ".", "--music", "x.ogg"])
    assert direct(settings_from(args), m, []).plans[0].titles == "allow"
    monkeypatch.delenv("MONTAGE_TITLES")
    assert direct(settings_from(args), m, []).plans[0].titles == "avoid"    # the preset's
    monkeypatch.setenv("MONTAGE_TITLES", "sometimes")
    assert main(["run", "--clips", ".", "--music", "x.ogg"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "MONTAGE_TITLES" in err[0] and "avoid" in err[0]


def test_a_burned_in_clock_is_part_of_the_picture_not_a_title(tmp_path):
    """A security camera's clock on every frame: the clip stays footage, and the summary says why."""
    bg = _backgrounds(tmp_path, SHARED_MEDIA if (SHARED_MEDIA / "README.md").is_file() else None)
    frames = [f for b in bg[:3] for f in b[:4 * RATE]]                 # 12 s, three shots
    path = tmp_path / "cctv.mp4"
    proc = subprocess.Popen([ffmpeg_path(), "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                             "-s", f"{W}x{H}", "-r", str(RATE), "-i", "pipe:0", "-c:v", "libx264", "-crf", "18",
                             "-pix_fmt", "yuv420p", str(path)], stdin=subprocess.PIPE)
    for i, frame in enumerate(frames):
        stamp = f"2026-12-02  10:41:{i // RATE:02d}  CAM 03"
        im = Image.fromarray(frame)
        ImageDraw.Draw(im).text((12, 10), stamp, font=_font(15), fill=(255, 255, 255))
        assert proc.stdin is not None
        proc.stdin.write(np.asarray(im).tobytes())
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=120) == 0
    a = analyze_clip(probe(path), 0)
    assert a.text == [] and all(s.text == 0 for s in a.shots)
    assert any("burned in" in w for w in a.warnings)


def test_samples_become_ranges_by_the_rules():
    """Pure rules on hand-made samples every 2 s: a shot with text in most samples is text whole,
    a lone sample's range reaches one step each way inside its shot, unmeasured samples count
    for nothing, and small text on nearly every sample is a burned-in stamp."""
    times = np.arange(0.0, 20.0, 0.5)
    share = np.full(times.size, np.nan)
    share[::4] = 0.0                                 # a sample every 2 s: 0, 2, 4, ...
    share[times == 4.0] = 0.02                       # a lower third seen once in shot 0
    share[(times >= 12.0) & (times < 20.0) & ~np.isnan(share)] = 0.05   # a title shot: 12, 14, 16, 18
    share[times == 16.0] = 0.0                       # ...faint in one sample
    ratios, ranges = text_on_screen([(0.0, 10.0), (10.0, 11.0), (11.0, 20.0)], times, share)
    assert [(r.start_s, r.end_s) for r in ranges] == [(2.0, 6.0), (11.0, 20.0)]
    assert ratios == [0.2, 0.0, 0.75]
    assert not burned_in(share)
    stamp = np.where(np.isnan(share), np.nan, 0.008)
    assert burned_in(stamp) and not burned_in(stamp * 4) and not burned_in(stamp[:12])
