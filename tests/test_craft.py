"""Edit craft: the cut never shows one moment twice while material lasts, says when it runs out,
keeps near-duplicates (the same moment seen again) apart, and avoids jump cuts unless the plan
wants them. On hand-built analyses (exact inputs), on real footage whose duplicates are known by
construction (a scene trimmed, cropped and rescaled from ../shared/media), and on a whole run
over the real media."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

import plan_fixtures as fx
from montage_ai.analysis.shots import analyze_clip
from montage_ai.analysis.similarity import look, look_distance, near_duplicate_groups, with_groups
from montage_ai.direct.presets import load_style
from montage_ai.media.ffmpeg import run_ffmpeg
from montage_ai.media.probe import probe
from montage_ai.plan.cutter import CutList, cut

FPS = Fraction(25)


def _windows(cl: CutList) -> list[tuple[str, int, int]]:
    """(file, first source frame, end) of each segment, dissolve handles included."""
    out = []
    for k, s in enumerate(cl.segments):
        head = s.transition_in_frames // 2
        tail = cl.segments[k + 1].transition_in_frames // 2 if k + 1 < len(cl.segments) else 0
        out.append((str(s.source), s.source_in_frame - head, s.source_in_frame + s.duration_frames + tail))
    return out


def _overlaps(cl: CutList) -> list[tuple[int, int]]:
    w = _windows(cl)
    return [(i, j) for i in range(len(w)) for j in range(i) if w[i][0] == w[j][0]
            and w[i][1] < w[j][2] and w[j][1] < w[i][2]]


def _with_looks(clips, looks: dict[str, str]):
    """The clips with the given shot signatures (shot id -> hex look), grouped as the pipeline does."""
    out = [c.model_copy(update={"shots": [s.model_copy(update={"signature": looks.get(s.id, "")}) for s in c.shots]})
           for c in clips]
    return with_groups(out)


def _hex(r: int, g: int, b: int, stripe: int = -1) -> str:
    """A 4x8 look: flat colour, with one bright column at `stripe` (a layout)."""
    cells = bytearray()
    for _ in range(4):
        for col in range(8):
            cells += bytes((250, 250, 250) if col == stripe else (r, g, b))
    return cells.hex()


def test_no_moment_is_shown_twice_while_material_lasts():
    """Three long shots for a 30 s cut: each segment takes a window no other segment has used,
    and no warning is needed."""
    clips = [fx.clip(0, [14.0, 14.0, 14.0])]
    cl = cut(fx.music(), clips, load_style("fast"), FPS, 30.0, seed=1)
    assert len(cl.segments) > 6
    assert _overlaps(cl) == []
    assert not [w for w in cl.warnings if "ran out" in w]


def test_when_material_runs_out_the_repeat_is_named():
    """Two short shots cannot fill 30 s without showing a moment again: the cut still fills
    the song, and a warning names the segments that had to repeat."""
    clips = [fx.clip(0, [3.0, 3.0])]
    cl = cut(fx.music(), clips, load_style("fast"), FPS, 30.0, seed=1)
    assert sum(s.duration_frames for s in cl.segments) == cl.total_frames
    assert _overlaps(cl)
    [warning] = [w for w in cl.warnings if "ran out" in w]
    assert "segment" in warning and "c00s0" in warning


def test_near_duplicates_are_never_consecutive_and_wait_their_turn():
    """Four clips that are two scenes filmed twice (same look) and two others: the same
    moment never follows itself, and no group returns before every group has been shown."""
    clips = [fx.clip(i, [8.0]) for i in range(4)]
    looks = {"c00s00": _hex(40, 90, 160, 2), "c01s00": _hex(42, 92, 158, 2),    # scene A twice
             "c02s00": _hex(200, 120, 40, 6), "c03s00": _hex(30, 160, 60, 0)}
    grouped = _with_looks(clips, looks)
    assert [s.group for c in grouped for s in c.shots] == ["c00s00", "c00s00", "c02s00", "c03s00"]
    cl = cut(fx.music(), grouped, load_style("dynamic"), FPS, 30.0, seed=4)
    group = {s.id: s.group for c in grouped for s in c.shots}
    seq = [group[s.shot_id] for s in cl.segments]
    assert all(a != b for a, b in zip(seq, seq[1:])), seq
    assert len(set(seq[:3])) == 3, seq        # all three moments before any returns


def test_jump_cuts_only_when_the_plan_asks():
    """One clip, one long shot and a short one: without jump cuts the long shot never follows
    itself while the other can come between; a plan with jump_cuts may cut within it."""
    clips = [fx.clip(0, [20.0, 2.5])]
    plain = cut(fx.music(), clips, load_style("fast"), FPS, 20.0, seed=2)
    ids = [s.shot_id for s in plain.segments]
    assert all(a != b for a, b in zip(ids, ids[1:])) or any("jump cut" in w for w in plain.warnings)
    jumpy = cut(fx.music(), clips, load_style("fast").model_copy(update={"jump_cuts": True}), FPS, 20.0, seed=2)
    ids = [s.shot_id for s in jumpy.segments]
    assert any(a == b for a, b in zip(ids, ids[1:]))
    assert _overlaps(jumpy) == []


@pytest.fixture(scope="module")
def scene_copies(shared_media, tmp_path_factory) -> dict[str, Path]:
    """Big Buck Bunny's meadow shot (11.8-15.6 s) trimmed twice (one copy cropped by 10 % and
    rescaled, as a second camera or a re-export), Big Buck Bunny's opening both as the 2 s clip
    and inside the 30 s one, and other real clips."""
    folder = tmp_path_factory.mktemp("copies")
    src = shared_media / "big_buck_bunny_0_30.webm"
    a, b = folder / "meadow_a.mp4", folder / "meadow_b.mp4"
    run_ffmpeg(["-ss", "12.2", "-t", "3.2", "-i", src, "-an", "-c:v", "libx264", "-preset", "veryfast", a], what="copy")
    run_ffmpeg(["-ss", "12.9", "-t", "2.8", "-i", src, "-an", "-vf", "crop=iw*0.9:ih*0.9,scale=960:540",
                "-c:v", "libx264", "-preset", "veryfast", b], what="copy")
    return {"meadow_a": a, "meadow_b": b, "bbb30": src, "bbb2": shared_media / "big_buck_bunny_2s.mp4",
            "sintel": shared_media / "sintel_2s.mp4", "cars": shared_media / "car-detection.mp4",
            "bottles": shared_media / "bottle-detection.mp4"}


@pytest.mark.real_media
def test_the_same_scene_is_grouped_and_other_scenes_are_not(scene_copies):
    analyses = [analyze_clip(probe(p), i) for i, p in enumerate(scene_copies.values())]
    by_name = dict(zip(scene_copies, analyses))
    group = near_duplicate_groups(analyses)
    meadow_a = by_name["meadow_a"].shots[0]
    meadow_b = by_name["meadow_b"].shots[0]
    meadow_30 = next(s for s in by_name["bbb30"].shots if s.start_s <= 13.0 < s.end_s)
    opening_2, opening_30 = by_name["bbb2"].shots[0], by_name["bbb30"].shots[0]
    assert group[meadow_a.id] == group[meadow_b.id] == group[meadow_30.id]
    assert group[opening_2.id] == group[opening_30.id]
    others = [s for name in ("sintel", "cars", "bottles") for s in by_name[name].shots]
    for s in others:
        assert group[s.id] == s.id, s.id            # alone
    distances = [look_distance(look(meadow_a.signature), look(s.signature))[0] for s in others]
    print(f"\nmeadow copies: layout {look_distance(look(meadow_a.signature), look(meadow_b.signature))[0]:.3f}; "
          f"nearest other scene {min(distances):.3f}")


@pytest.mark.real_media
def test_a_run_on_the_real_media_never_shows_a_moment_twice(shared_media, tmp_path):
    """The whole pipeline on every real clip and song: no two segments share a source frame
    unless the summary says the material ran out, and the same moment never follows itself."""
    from montage_ai.pipeline import run
    from montage_ai.settings import Settings

    clips = tmp_path / "clips"
    clips.mkdir()
    for p in sorted(shared_media.iterdir()):
        if p.suffix in (".mp4", ".webm"):
            (clips / p.name).symlink_to(p)
    s = Settings(clips=clips, music=shared_media / "vibe_ace.ogg", out=tmp_path / "out", duration=30.0,
                 resolution="360p", cache_dir=tmp_path / "cache")
    summary = run(s, progress=False)
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    segs = plan["segments"]
    windows = [(x["source"], x["source_in_frame"], x["source_in_frame"] + x["duration_frames"]) for x in segs]
    repeats = [(i, j) for i in range(len(windows)) for j in range(i) if windows[i][0] == windows[j][0]
               and windows[i][1] < windows[j][2] and windows[j][1] < windows[i][2]]
    ran_out = [w for w in summary.warnings if "ran out" in w]
    print(f"\n{len(segs)} segments from {len({x['shot_id'] for x in segs})} shots; repeats {repeats}; {ran_out}")
    assert not repeats or ran_out
    group = {sh["id"]: sh.get("same_moment_as", sh["id"]) for sh in plan["analysis"]["shots"]}
    seq = [group[x["shot_id"]] for x in segs]
    assert all(a != b for a, b in zip(seq, seq[1:]))
    # Big Buck Bunny's 'presents' line and title are found, and no segment shows them
    assert plan["craft"]["text_ranges"] >= 2 and plan["craft"]["segments_with_text"] == 0


def test_the_craft_report_counts_what_the_cut_did():
    """On a cut with plenty of material and on one that runs out: shots shown again, moments
    shown twice, jump cuts and beats are counted as the segments say."""
    from montage_ai.plan.craft import craft_report

    m = fx.music()
    plenty = [fx.clip(i, [3.0, 4.5, 6.0, 2.5]) for i in range(8)]
    rich = craft_report(cut(m, plenty, load_style("dynamic"), FPS, 30.0, seed=3), plenty, m)
    assert rich.repeated_windows == 0 and rich.repeated_shots == {} and rich.jump_cuts == 0 and not rich.ran_out
    assert rich.cuts == rich.segments - 1 and rich.cuts_on_beat == rich.cuts      # the fixture's cuts are all on beats
    assert sum(s.segments for s in rich.sources) == rich.segments
    short = [fx.clip(0, [3.0, 3.0])]
    cl = cut(m, short, load_style("fast"), FPS, 30.0, seed=1)
    poor = craft_report(cl, short, m)
    assert poor.ran_out and poor.repeated_windows == len(_overlaps(cl)) > 0
    assert set(poor.repeated_shots) == {"c00s00", "c00s01"}
    assert any("moments shown twice" in line and "ran out" in line for line in poor.lines())


def test_grouping_in_blocks_agrees_with_the_pairwise_rule():
    """near_duplicate_groups compares all pairs in NumPy blocks: on 400 looks (random ones,
    planted copies with a brightness change, and a chain a~b~c), its groups are exactly the
    connected pieces of same_moment, whatever the block size."""
    import numpy as np

    from montage_ai.analysis.similarity import same_moment

    rng = np.random.default_rng(7)
    clips = [fx.clip(i, [5.0] * 10) for i in range(40)]
    looks = [rng.integers(0, 256, 96, dtype=np.uint8) for _ in range(400)]
    for k in range(0, 400, 37):                       # a copy 6 levels brighter: the same moment
        looks[(k + 11) % 400] = np.clip(looks[k].astype(int) + 6, 0, 255).astype(np.uint8)
    clips = [c.model_copy(update={"shots": [s.model_copy(update={"signature": looks[i * 10 + n].tobytes().hex()})
                                            for n, s in enumerate(c.shots)]}) for i, c in enumerate(clips)]
    ids = [s.id for c in clips for s in c.shots]
    vecs = [look(s.signature) for c in clips for s in c.shots]
    parent = list(range(len(ids)))
    for i in range(len(ids)):                          # the pairwise rule, by brute force
        for j in range(i):
            if same_moment(vecs[i], vecs[j]):
                a, b = parent[i], parent[j]
                parent = [min(a, b) if p in (a, b) else p for p in parent]
    truth = {ids[i]: ids[parent[i]] for i in range(len(ids))}
    assert sum(1 for k, v in truth.items() if k != v) >= 10
    assert near_duplicate_groups(clips) == truth == near_duplicate_groups(clips, block_bytes=4096)
