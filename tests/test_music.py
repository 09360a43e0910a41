"""Music analysis against synthesized drum tracks with exact ground truth, and real songs.

Every track is written to a real file and decoded through PyAV, as in production. Tracks are
module-scoped fixtures: each is synthesized and analysed once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from montage_ai.analysis.music import MusicAnalysis, analyze_music, decode_audio
from montage_ai.demo.synth_audio import (
    make_tempo_track,
    DrumTrackTruth,
    make_drum_track,
    score_beats,
    write_audio,
    write_video,
)
from montage_ai.errors import MediaError

SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"

TEMPO_TOLERANCE = 0.01          # relative
MIN_FOUND = 0.97                # fraction of true beats with a detection within 70 ms
MAX_MEDIAN_ERROR_S = 0.015


def check_beats(name: str, truth: DrumTrackTruth, got: MusicAnalysis, offset_s: float = 0.0) -> None:
    """Assert the acceptance targets and print the measured figures."""
    true_beats = [t - offset_s for t in truth.beat_times_s if t - offset_s >= 0]
    scores = score_beats(true_beats, got.beat_times_s)
    tempo_err = got.tempo_bpm / truth.bpm - 1
    print(
        f"\n{name}: tempo {got.tempo_bpm:.3f} BPM (truth {truth.bpm}, error {100 * tempo_err:+.3f}%), "
        f"beats found {100 * scores.found_fraction:.1f}% ({len(got.beat_times_s)} detected, "
        f"{len(true_beats)} true, {scores.extra} extra), median error "
        f"{1000 * scores.median_abs_error_s:.2f} ms (signed {1000 * scores.median_signed_error_s:+.2f} ms)"
    )
    assert abs(tempo_err) <= TEMPO_TOLERANCE
    assert scores.found_fraction >= MIN_FOUND
    assert scores.median_abs_error_s <= MAX_MEDIAN_ERROR_S
    assert scores.extra <= 1
    assert got.beat_times_s == sorted(got.beat_times_s)
    assert all(0 <= t < got.duration_s for t in got.beat_times_s)


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("music")


@pytest.fixture(scope="module")
def track120(media_dir) -> tuple[DrumTrackTruth, MusicAnalysis]:
    """120 BPM, 48 s, low-high-low-high in 12 s (6-bar) parts."""
    truth = make_drum_track(media_dir / "t120.wav", bpm=120.0, duration_s=48.0)
    return truth, analyze_music(truth.path)


@pytest.fixture(scope="module")
def track97(media_dir) -> tuple[DrumTrackTruth, MusicAnalysis]:
    truth = make_drum_track(media_dir / "t97.wav", bpm=97.0, duration_s=40.0, seed=1)
    return truth, analyze_music(truth.path)


@pytest.fixture(scope="module")
def track_late(media_dir) -> tuple[DrumTrackTruth, MusicAnalysis]:
    """First beat at 1.37 s after silence, at 48 kHz, with sections at other times."""
    truth = make_drum_track(
        media_dir / "late.wav", bpm=132.0, duration_s=36.0, sample_rate=48000, first_beat_s=1.37,
        sections=[(0.0, "high"), (16.0, "low"), (27.0, "high")], seed=2,
    )
    return truth, analyze_music(truth.path)


@pytest.fixture(scope="module")
def format_track(media_dir) -> tuple[DrumTrackTruth, np.ndarray, int]:
    """A 20 s all-high 120 BPM track (written per format by the format test)."""
    import soundfile as sf

    truth = make_drum_track(media_dir / "fmt.wav", bpm=120.0, duration_s=20.0, seed=4)
    samples, sr = sf.read(truth.path, dtype="float32")
    return truth, samples, sr


# --- beats and tempo -----------------------------------------------------------------------------


TEMPO_CHANGES = {
    "ramp 90 -> 130 BPM over 40 s": lambda t: 90.0 + 40.0 * min(1.0, t / 40.0),
    "sudden 100 -> 140 BPM at 20 s": lambda t: 100.0 if t < 20.0 else 140.0,
    "sudden 128 -> 96 BPM at 18 s": lambda t: 128.0 if t < 18.0 else 96.0,
}


@pytest.fixture(scope="module", params=list(TEMPO_CHANGES))
def changing_tempo(media_dir, request) -> tuple[str, DrumTrackTruth, MusicAnalysis]:
    truth = make_tempo_track(media_dir / f"tempo{list(TEMPO_CHANGES).index(request.param)}.wav",
                             TEMPO_CHANGES[request.param], duration_s=40.0, seed=5)
    return request.param, truth, analyze_music(truth.path)


def test_beats_follow_a_tempo_that_changes(changing_tempo):
    """A ramp and a sudden change: the tracker follows the local tempo (librosa's dynamic
    programme given a tempo per frame), so beats are found throughout, on their attacks."""
    name, truth, got = changing_tempo
    scores = score_beats(truth.beat_times_s, got.beat_times_s)
    print(f"\n{name}: beats found {100 * scores.found_fraction:.1f}% ({len(got.beat_times_s)} detected, "
          f"{len(truth.beat_times_s)} true, {scores.extra} extra), median error {1000 * scores.median_abs_error_s:.2f} ms")
    assert scores.found_fraction >= 0.95
    assert scores.median_abs_error_s <= 0.015
    assert scores.extra <= 3
    for half in (slice(0, len(truth.beat_times_s) // 2), slice(len(truth.beat_times_s) // 2, None)):
        assert score_beats(truth.beat_times_s[half], got.beat_times_s).found_fraction >= 0.9   # throughout


def test_cuts_follow_a_tempo_that_changes(changing_tempo):
    """The cutter's grid is the detected beats: every cut of a montage on a changing tempo sits
    within a frame of a true beat."""
    from fractions import Fraction

    import plan_fixtures as fx
    from montage_ai.direct.presets import load_style
    from montage_ai.plan.cutter import cut

    name, truth, got = changing_tempo
    fps = Fraction(25)
    cl = cut(got, [fx.clip(i, [3.0, 4.5, 6.0, 2.5]) for i in range(6)], load_style("dynamic"), fps, 36.0, seed=2)
    cuts = [s.record_start_frame for s in cl.segments[1:]]
    true_frames = np.asarray(truth.beat_times_s) * float(fps)
    off = [float(np.min(np.abs(true_frames - c))) for c in cuts]
    print(f"\n{name}: {len(cuts)} cuts, worst {max(off):.2f} frames from a true beat")
    assert len(cuts) >= 8 and max(off) <= 1.0


def test_beats_120_bpm(track120):
    truth, got = track120
    check_beats("120 BPM", truth, got)
    assert got.beat_times_s[0] == pytest.approx(0.0, abs=0.015)      # the first beat is not lost
    assert got.beat_times_s[-1] == pytest.approx(truth.beat_times_s[-1], abs=0.015)


def test_beats_97_bpm(track97):
    truth, got = track97
    check_beats("97 BPM", truth, got)


def test_beats_first_beat_late(track_late):
    truth, got = track_late
    check_beats("132 BPM, first beat at 1.37 s, 48 kHz", truth, got)
    assert got.beat_times_s[0] == pytest.approx(1.37, abs=0.015)     # nothing invented in the silence


def test_downbeats_phase(track120, track97, track_late):
    for truth, got in (track120, track97, track_late):
        assert got.beats_per_bar == 4
        scores = score_beats(truth.downbeat_times_s, got.downbeat_times_s)
        assert scores.found_fraction >= MIN_FOUND, truth.path.name
        assert scores.extra == 0, truth.path.name


def test_result_shape(track120):
    truth, got = track120
    assert got.duration_s == pytest.approx(48.0, abs=0.01)
    assert got.file_duration_s == pytest.approx(48.0, abs=0.01)
    assert 0.05 <= got.energy_hop_s <= 0.1
    assert len(got.energy) == pytest.approx(got.duration_s / got.energy_hop_s, abs=2)
    assert min(got.energy) >= 0.0 and max(got.energy) <= 1.0 and max(got.energy) > 0.9
    MusicAnalysis.model_validate_json(got.model_dump_json())


def test_deterministic(track97):
    truth, got = track97
    assert analyze_music(truth.path) == got


# --- energy and sections -------------------------------------------------------------------------


def check_sections(truth: DrumTrackTruth, got: MusicAnalysis) -> None:
    bar_s = 4 * 60.0 / truth.bpm
    sections = got.sections
    print(f"\n{truth.path.name} sections: " + ", ".join(
        f"{s.start_s:.2f}-{s.end_s:.2f} {s.level}/{s.label} ({s.energy:.2f})" for s in sections))
    assert sections[0].start_s == 0.0 and sections[-1].end_s == pytest.approx(got.duration_s)
    for a, b in zip(sections, sections[1:]):
        assert a.end_s == b.start_s
    for s in sections:
        assert s.level == truth.level_at((s.start_s + s.end_s) / 2), s
        assert s.label in {"intro", "verse", "chorus", "drop", "bridge", "outro"}
    found = [s.start_s for s in sections[1:]]
    for boundary in truth.section_boundaries_s:
        assert min(abs(boundary - f) for f in found) <= bar_s, boundary
    downbeats = np.asarray(got.downbeat_times_s)
    for f in found:
        assert np.min(np.abs(downbeats - f)) < 1e-3                  # boundaries sit on downbeats


def test_sections_low_high_low_high(track120):
    truth, got = track120
    check_sections(truth, got)
    assert [s.label for s in got.sections][0] == "intro"


def test_sections_other_layout(track_late):
    check_sections(*track_late)


def test_energy_follows_sections(track120):
    truth, got = track120
    energy = np.asarray(got.energy)
    times = np.arange(energy.size) * got.energy_hop_s
    for s in truth.sections:
        inner = (times > s.start_s + 1.0) & (times < s.end_s - 1.0)
        mean = energy[inner].mean()
        assert (mean > 0.35) if s.level == "high" else (mean < 0.3), (s, mean)


# --- start offset --------------------------------------------------------------------------------


@pytest.mark.parametrize("offset_s", [5.25, 13.0])  # below and above the seek threshold
def test_start_offset_shifts_beats(track120, offset_s):
    truth, full = track120
    got = analyze_music(truth.path, start_offset_s=offset_s)
    assert got.start_offset_s == offset_s
    assert got.duration_s == pytest.approx(truth.duration_s - offset_s, abs=0.01)
    assert got.file_duration_s == pytest.approx(truth.duration_s, abs=0.01)
    check_beats(f"120 BPM from {offset_s} s", truth, got, offset_s=offset_s)
    shifted = [t - offset_s for t in full.beat_times_s if t - offset_s >= 0.05]
    assert score_beats(shifted, got.beat_times_s, tolerance_s=0.005).found_fraction >= 0.97


def test_decode_offset_is_sample_exact(media_dir, format_track):
    """Seeking and then trimming gives the same samples as decoding everything and cutting."""
    truth, samples, sr = format_track
    path = write_audio(media_dir / "seek.ogg", samples, sr)
    full, _ = decode_audio(path)
    part, _ = decode_audio(path, 12.5)
    start = int(round(12.5 * 22050))
    assert part.size == full.size - start
    np.testing.assert_allclose(part[:22050], full[start:start + 22050], atol=1e-4)


# --- formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3", ".m4a", ".mp4"])
def test_formats(media_dir, format_track, suffix):
    truth, samples, sr = format_track
    if suffix == ".mp4":
        path = write_video(media_dir / "fmt_video.mp4", truth.duration_s, audio_path=truth.path)
    else:
        path = write_audio(media_dir / f"fmt_out{suffix}", samples, sr)
    got = analyze_music(path)
    scores = score_beats(truth.beat_times_s, got.beat_times_s)
    print(f"\n{suffix}: tempo {got.tempo_bpm:.3f}, found {100 * scores.found_fraction:.1f}%, "
          f"median error {1000 * scores.median_abs_error_s:.2f} ms")
    assert got.tempo_bpm == pytest.approx(truth.bpm, rel=TEMPO_TOLERANCE)
    assert scores.found_fraction >= MIN_FOUND


# --- errors --------------------------------------------------------------------------------------


def test_video_without_audio(media_dir):
    path = write_video(media_dir / "silent.mp4", 2.0)
    with pytest.raises(MediaError, match="no audio stream") as info:
        analyze_music(path)
    assert str(path) in str(info.value)


def test_corrupt_file(media_dir):
    path = media_dir / "corrupt.mp3"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError) as info:
        analyze_music(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file(media_dir):
    path = media_dir / "nope.wav"
    with pytest.raises(MediaError) as info:
        analyze_music(path)
    assert str(path) in str(info.value)


def test_offset_beyond_end(track97):
    truth, _ = track97
    with pytest.raises(MediaError, match="beyond the end"):
        analyze_music(truth.path, start_offset_s=truth.duration_s + 5.0)


def test_negative_offset(track97):
    truth, _ = track97
    with pytest.raises(MediaError):
        analyze_music(truth.path, start_offset_s=-1.0)


# --- real media ----------------------------------------------------------------------------------


def real_file(name: str) -> Path:
    path = SHARED_MEDIA / name
    if not path.is_file():
        pytest.skip(f"real media not available: {path} (../shared/media is absent in this checkout)")
    return path


@pytest.mark.real_media
def test_real_jazz_with_cover_art():
    got = analyze_music(real_file("vibe_ace.ogg"))
    print(f"\nvibe_ace.ogg: tempo {got.tempo_bpm:.2f} BPM, {len(got.beat_times_s)} beats, "
          f"{len(got.sections)} sections")
    assert got.tempo_bpm == pytest.approx(129.0, rel=0.02)
    assert got.duration_s == pytest.approx(61.46, abs=0.1)
    assert got.beat_times_s[0] < 0.6 and got.beat_times_s[-1] > got.duration_s - 2.5


@pytest.mark.real_media
def test_real_pop_song_sections():
    got = analyze_music(real_file("lets_go_fishin.ogg"))
    print(f"\nlets_go_fishin.ogg: tempo {got.tempo_bpm:.2f} BPM, {len(got.beat_times_s)} beats, sections: "
          + ", ".join(f"{s.start_s:.1f}-{s.end_s:.1f} {s.level}/{s.label}" for s in got.sections))
    assert got.tempo_bpm == pytest.approx(117.5, rel=0.02)
    assert len(got.sections) > 1
    assert {s.level for s in got.sections} >= {"low", "high"}
    ibi = np.diff(got.beat_times_s)
    assert np.median(ibi) == pytest.approx(60 / 117.5, rel=0.03)


@pytest.mark.real_media
def test_a_dj_splice_of_two_real_songs_keeps_each_tempo_and_finds_each_splice(tmp_path):
    """Two real recordings in two tempi (117.5 and 129 BPM) spliced four times, as a DJ mix or a
    medley would: the main tempo is one of them (not the compromise the averaged tempogram
    gives: 172 BPM before), every splice (where any listener hears the change) starts a
    section, and beats follow each song's own beats."""
    import soundfile as sf

    fishin, vibe = real_file("lets_go_fishin.ogg"), real_file("vibe_ace.ogg")
    sr = 22050
    a, b = decode_audio(fishin, sample_rate_hz=sr)[0], decode_audio(vibe, sample_rate_hz=sr)[0]
    own = {fishin: analyze_music(fishin), vibe: analyze_music(vibe)}
    pieces = [(fishin, a, 10, 35), (vibe, b, 5, 30), (fishin, a, 60, 85), (vibe, b, 30, 55)]
    sf.write(tmp_path / "mix.wav", np.concatenate([y[s * sr:e * sr] for _, y, s, e in pieces]), sr)
    got = analyze_music(tmp_path / "mix.wav")
    splices = [25.0, 50.0, 75.0]
    starts = [s.start_s for s in got.sections[1:]]
    beats = np.asarray(got.beat_times_s)
    shares, t0 = [], 0.0
    for path, _, s, e in pieces:
        ref = np.asarray(own[path].beat_times_s)
        ref = ref[(ref >= s + 0.5) & (ref < e - 0.5)] - s + t0
        shares.append(float(np.mean([np.min(np.abs(beats - r)) <= 0.07 for r in ref])))
        t0 += e - s
    print(f"\nmain tempo {got.tempo_bpm:.1f} BPM; section starts {[round(x, 1) for x in starts]}; beats within 70 ms "
          f"of each piece's own: {', '.join(f'{x:.0%}' for x in shares)}")
    assert min(abs(got.tempo_bpm - 117.5) / 117.5, abs(got.tempo_bpm - 129.2) / 129.2) < 0.05
    assert all(min(abs(x - t) for x in starts) <= 2.0 for t in splices)
    assert np.mean(shares) >= 0.6 and min(shares) >= 0.4
