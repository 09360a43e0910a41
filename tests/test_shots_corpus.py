"""Shot boundaries where the answer is known by construction: lavfi pictures cut together, a
lavfi shot with flashes, a strobe and flicker laid over it, and a corpus of real footage
(../shared/media) with hard cuts, a fade through black, a cross-dissolve, flashes and flicker.

The analysis reads reference frames first and every frame only around cuts: these tests check
that cut frames stay exact although frames were skipped, and that flicker is not a cut."""

from __future__ import annotations

import numpy as np
import pytest

import av

from montage_ai.analysis import decode as D
from montage_ai.analysis import shots as S
from montage_ai.analysis.boundary_corpus import TEST_JOINS, TEST_SEGMENTS, build_corpus, score
from montage_ai.analysis.shots import analyze_clip
from montage_ai.media.ffmpeg import run_ffmpeg
from montage_ai.media.probe import probe

FPS = 25
LAVFI_SHOTS = (  # (source, frames): moving pictures, so nothing is frozen and every frame differs; seeded, so every
    # run sees the same pictures
    ("testsrc2=s=320x180:r=25", 37),
    ("life=s=320x180:r=25:seed=3:mold=10:ratio=0.1:death_color=#C83232:life_color=#00ff00", 41),
    ("mandelbrot=s=320x180:r=25", 44),
    ("testsrc2=s=320x180:r=25,hflip,hue=h=120", 39),
    ("cellauto=s=320x180:r=25:seed=3:rule=110,format=rgb24,colorchannelmixer=rr=0.2:gb=0.9", 43),
)


def _x264(path, *inputs_and_filters):
    """H.264 with x264's default B-frames (about half of them never referenced: the first pass
    skips those) and no scene-cut keyframes (keyframes say nothing about cuts)."""
    run_ffmpeg([*inputs_and_filters, "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
                "-g", "48", "-x264-params", "scenecut=0", "-r", str(FPS), path], what="test clip")


@pytest.fixture(scope="module")
def lavfi_cuts(tmp_path_factory):
    path = tmp_path_factory.mktemp("lavfi") / "cuts.mp4"
    args: list[str] = []
    for src, _ in LAVFI_SHOTS:
        args += ["-f", "lavfi", "-i", src]
    chains = [f"[{i}:v]trim=end_frame={n},setpts=PTS-STARTPTS,format=yuv420p,setsar=1[v{i}]"
              for i, (_, n) in enumerate(LAVFI_SHOTS)]
    joined = "".join(f"[v{i}]" for i in range(len(LAVFI_SHOTS)))
    graph = ";".join(chains) + f";{joined}concat=n={len(LAVFI_SHOTS)}:v=1:a=0[out]"
    _x264(path, *args, "-filter_complex", graph, "-map", "[out]")
    cuts = list(np.cumsum([n for _, n in LAVFI_SHOTS])[:-1])
    return path, [int(c) for c in cuts], sum(n for _, n in LAVFI_SHOTS)


def test_lavfi_hard_cuts_exact_though_frames_were_skipped(lavfi_cuts):
    path, cuts, frames = lavfi_cuts
    a = analyze_clip(probe(path), 0)
    print(f"\nlavfi cuts {cuts}: found {[(b.frame, b.kind) for b in a.boundaries]}, "
          f"{a.frames_analyzed} of {frames} frames decoded")
    assert [b.frame for b in a.boundaries] == cuts
    assert all(b.kind == "cut" for b in a.boundaries)
    assert not any(s.flicker for s in a.shots)
    assert a.frames_analyzed < 0.8 * frames          # the first pass skipped non-reference frames
    assert [s.start_frame for s in a.shots] == [0] + cuts
    assert [round(s.start_s * FPS) for s in a.shots] == [0] + cuts
    assert a.shots[-1].end_frame == frames and a.shots[-1].end_s == pytest.approx(frames / FPS, abs=1e-3)


def test_lavfi_every_frame_gives_the_same_cuts(lavfi_cuts, monkeypatch):
    path, cuts, frames = lavfi_cuts
    monkeypatch.setenv("MONTAGE_SHOTS_EVERY_FRAME", "1")
    a = analyze_clip(probe(path), 0)
    assert a.frames_analyzed == frames
    assert [b.frame for b in a.boundaries] == cuts


def test_flashes_strobe_and_flicker_inside_one_shot_are_not_cuts(tmp_path):
    path = tmp_path / "flicker.mp4"
    disturb = ",".join([
        "drawbox=x=0:y=0:w=iw:h=ih:c=white:t=fill:enable='eq(n,20)'",          # one white frame
        "eq=brightness=0.45:contrast=0.8:enable='between(n,45,46)'",            # a two-frame burst
        "drawbox=x=0:y=0:w=iw/2:h=ih:c=white@0.8:t=fill:enable='eq(n,70)'",     # a half-frame camera flash
        "eq=brightness=0.5:enable='between(n,90,130)*lt(mod(n,4),1)'",          # a strobe
        "eq=eval=frame:brightness='between(n,140,190)*(0.16*sin(n*2.3)+0.09*sin(n*5.1+1))'"
        ":contrast='1+between(n,140,190)*0.25*sin(n*3.7)'",                     # firelight-like flicker
    ])
    _x264(path, "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=8", "-vf", disturb)
    a = analyze_clip(probe(path), 0)
    assert a.boundaries == [], [(b.frame, b.kind) for b in a.boundaries]
    assert len(a.shots) == 1
    assert a.shots[0].flicker          # the director is told: one shot, with flashes and flicker inside


def test_same_layout_tells_flicker_from_a_cut():
    rng = np.random.default_rng(3)
    scene = rng.integers(0, 256, (S.SIG_ROWS * S.SIG_COLS * 3,)).astype(np.float32)
    other = rng.integers(0, 256, scene.shape).astype(np.float32)
    gains = [1.0, 1.0, 0.5, 1.3, 0.8, 1.0]          # brightness swings of the same picture
    flicker = np.stack([np.clip(scene * g + 10 * i, 0, 255) for i, g in enumerate(gains)]).astype(np.uint8)
    cut = np.stack([scene, scene, scene, other, other, other]).astype(np.uint8)
    n = len(gains)
    base = S.FeatureSeries(times_s=np.arange(n) / 25, key_frame=np.zeros(n), brightness=np.full(n, 0.5),
                           dark_share=np.zeros(n), bright_share=np.zeros(n), sharpness_raw=np.full(n, 500.0),
                           contrast=np.full(n, 1000.0), motion_raw=np.zeros(n), motion_peak=np.zeros(n),
                           sig_change=np.zeros(n), hist_change=np.zeros(n), signatures=flicker)
    assert S.same_layout(base, 3)
    base.signatures = cut
    assert not S.same_layout(base, 3)


@pytest.mark.real_media
def test_real_footage_corpus(shared_media, tmp_path):
    truth = build_corpus(tmp_path / "corpus.mp4", shared_media, TEST_SEGMENTS, TEST_JOINS,
                         width=640, height=360, preset="veryfast")
    a = analyze_clip(probe(truth.path), 0)
    found = [(b.frame, b.kind) for b in a.boundaries]
    p, r, f = score([b.frame for b in a.boundaries], truth.boundaries)
    print(f"\nreal corpus: truth {truth.boundaries}; found {found}; precision {p:.2f} recall {r:.2f}; "
          f"{a.frames_analyzed} of {truth.frame_count} frames decoded")
    for kind, first, last in truth.boundaries:
        if kind == "cut":       # hard cuts within a frame (exact, in practice)
            assert any(abs(b.frame - first) <= 1 and b.kind == "cut" for b in a.boundaries), (first, found)
        else:                   # the fade and the dissolve, somewhere in their span, as such
            assert any(first <= b.frame <= last and b.kind == kind for b in a.boundaries), (kind, first, found)
    for _, first, last in truth.disturbances:   # flashes and flicker inside one shot
        assert not any(first - 2 <= b.frame <= last + 2 for b in a.boundaries), (first, last, found)
    assert p == 1.0 and r == 1.0
    assert a.frames_analyzed < truth.frame_count


def test_parts_read_in_parallel_give_the_same_analysis(lavfi_cuts, monkeypatch):
    """A long clip is read in parts by parallel decoders (each followed by its own second pass):
    the result is the one a single reading gives."""
    path, cuts, _ = lavfi_cuts
    media = probe(path)
    monkeypatch.setattr(S, "usable_cpus", lambda: 1)
    whole = analyze_clip(media, 0)
    monkeypatch.setattr(S, "usable_cpus", lambda: 3)
    monkeypatch.setattr(S, "MIN_PART_S", 2.0)       # 8 s: three parts, seams inside shots and near cuts
    parts = analyze_clip(media, 0)
    assert [b.frame for b in parts.boundaries] == [b.frame for b in whole.boundaries] == cuts
    assert parts.sample_times_s == whole.sample_times_s
    assert parts.shots == whole.shots and parts.unusable == whole.unusable
    assert np.allclose(parts.motion, whole.motion) and np.allclose(parts.sharpness, whole.sharpness)


def _frame_count(path, skip: str) -> int:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.skip_frame = skip
        return sum(1 for _ in c.decode(s))


@pytest.mark.parametrize("kind", ["h264-mp4", "h264-ts", "hevc-mp4", "hevc-mkv"])
def test_the_hint_reads_reference_flags_as_the_decoder_does(lavfi_cuts, tmp_path, kind):
    """decode.is_reference reads a packet's NAL header (length-prefixed in MP4/MKV, start codes
    in MPEG-TS): the packets it calls unreferenced are exactly the frames skip_frame=NONREF drops."""
    path, _, frames = lavfi_cuts
    codec, container = kind.split("-")
    if codec == "hevc" or container != "mp4":
        out = tmp_path / f"clip.{container}"
        video = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"] if codec == "hevc" \
            else ["-c:v", "copy"]
        run_ffmpeg(["-i", path, *video, out], what="test clip")
        path = out
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        hint = D.CutHint.for_stream(stream)
        assert hint is not None and hint.codec == codec and hint.length_size == (0 if container == "ts" else 4)
        flags = [D.is_reference(bytes(p), hint.codec, hint.length_size) for p in c.demux(stream) if p.size]
    assert None not in flags and len(flags) == frames
    unreferenced = flags.count(False)
    assert unreferenced > frames // 5                      # B-frames that nothing refers to
    assert unreferenced == _frame_count(path, "DEFAULT") - _frame_count(path, "NONREF")


def test_the_hint_spares_the_second_pass_and_changes_nothing(lavfi_cuts, monkeypatch):
    """At each hard cut the first predicted frame after it is large; the first pass then also
    decodes the frames between it and the reference frame before, so the second pass has
    (almost) nothing left to decode again, and the analysis is the one without the hint."""
    path, cuts, _ = lavfi_cuts
    media = probe(path)
    monkeypatch.setattr(S, "usable_cpus", lambda: 1)
    decoded: list[int] = []
    real = S.decode_windows

    def counting(media, windows, *args, **kwargs):
        if not kwargs.get("reference_only"):
            decoded.append(len(windows))
        return real(media, windows, *args, **kwargs)

    monkeypatch.setattr(S, "decode_windows", counting)
    with_hint = analyze_clip(media, 0)
    second_pass_with = sum(decoded)
    decoded.clear()
    monkeypatch.setattr(D.CutHint, "for_stream", classmethod(lambda cls, stream: None))
    without = analyze_clip(media, 0)
    second_pass_without = sum(decoded)
    print(f"\nsecond-pass windows decoded: {second_pass_with} with the hint, {second_pass_without} without")
    assert [b.frame for b in with_hint.boundaries] == [b.frame for b in without.boundaries] == cuts
    assert with_hint.sample_times_s == without.sample_times_s and with_hint.shots == without.shots
    assert np.allclose(with_hint.motion, without.motion) and with_hint.unusable == without.unusable
    assert second_pass_with < second_pass_without
