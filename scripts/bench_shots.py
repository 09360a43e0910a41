"""Shot detection on real footage with known boundaries: Montage AI against PySceneDetect.

Corpus (built once into .cache/bench-shots, ~1 min): 26 segments of the clips in
../shared/media, 1280x720 25 fps H.264 (x264 medium, crf 21, 2 s GOP, no scene-cut keyframes),
joined by 22 hard cuts, two fades through black and one dissolve, with flashes, a strobe and a
firelight-like flicker laid inside three shots (see montage_ai.analysis.boundary_corpus).

Each detector runs in its own process, three times; the table gives medians. fps = frames /
wall time of the detection call (imports excluded; frames = the corpus's frames, whether
or not a detector decodes every one); CPU s = user + system time of that call,
every thread and child process included; proc CPU s = the whole process (imports included).
A found boundary matches a hard cut within +-2 frames and a fade or dissolve anywhere in its span.

    pip install 'montage-ai[bench]'        # PySceneDetect (a benchmark dependency only)
    python scripts/bench_shots.py [--runs 3] [--rebuild] [--before OLD_SHOTS_PY]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "media"
sys.path.insert(0, str(ROOT / "engine"))

DETECTORS = ("montage", "montage-before", "scenedetect-content", "scenedetect-adaptive", "pyav-decode",
             "pyav-decode-1t", "pyav-decode-ref")
LABELS = {
    "montage": "Montage AI analyze_clip",
    "montage-before": "Montage AI before (--before FILE)",
    "scenedetect-content": "PySceneDetect ContentDetector()",
    "scenedetect-adaptive": "PySceneDetect AdaptiveDetector()",
    "pyav-decode": "PyAV threaded decode (reference)",
    "pyav-decode-1t": "PyAV one-thread decode, no deblocking (floor, every frame)",
    "pyav-decode-ref": "PyAV one-thread decode, no deblocking, reference frames only",
}


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _shots_module(source: str | None):
    """The engine's shots module, or another version of it (a file, e.g. from `git show`) loaded
    in its place inside the package, so its relative imports resolve."""
    if not source:
        from montage_ai.analysis import shots
        return shots
    import importlib.util

    spec = importlib.util.spec_from_file_location("montage_ai.analysis._shots_other", source)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_one(name: str, path: Path) -> dict:
    """In the child process: detect, and report frames, boundaries, wall and CPU of the call."""
    if name in ("montage", "montage-before"):
        import os

        analyze_clip = _shots_module(os.environ.get("BENCH_SHOTS_BEFORE") if name == "montage-before" else None).analyze_clip
        from montage_ai.media.probe import probe

        media = probe(path)
        t0, c0 = time.perf_counter(), _cpu()
        a = analyze_clip(media, 0)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        return dict(frames=a.frames_analyzed, boundaries=[b.frame for b in a.boundaries],
                    kinds=[b.kind for b in a.boundaries], wall=wall, cpu=cpu)
    if name.startswith("scenedetect"):
        import scenedetect
        from scenedetect import AdaptiveDetector, ContentDetector, open_video, SceneManager

        video = open_video(str(path))
        manager = SceneManager()
        manager.add_detector(ContentDetector() if name.endswith("content") else AdaptiveDetector())
        t0, c0 = time.perf_counter(), _cpu()
        frames = manager.detect_scenes(video, show_progress=False)
        scenes = manager.get_scene_list()
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        return dict(frames=frames, boundaries=[s.get_frames() for s, _ in scenes[1:]],
                    version=scenedetect.__version__, wall=wall, cpu=cpu)
    if name.startswith("pyav-decode"):
        import av

        t0, c0 = time.perf_counter(), _cpu()
        frames = 0
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if name != "pyav-decode":       # the engine's decoder settings: one thread, no deblocking
                stream.thread_type = "SLICE"
                stream.codec_context.thread_count = 1
                stream.codec_context.options = {"skip_loop_filter": "all"}
            if name == "pyav-decode-ref":
                stream.codec_context.skip_frame = "NONREF"
            for _ in container.decode(stream):
                frames += 1
        return dict(frames=frames, boundaries=None, wall=time.perf_counter() - t0, cpu=_cpu() - c0)
    raise SystemExit(f"unknown detector {name}")


def measured(name: str, path: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, __file__, "--one", name, str(path)], check=True,
                          capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["proc_cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out


def corpus(rebuild: bool):
    from montage_ai.analysis.boundary_corpus import BENCH_JOINS, BENCH_SEGMENTS, CorpusTruth, build_corpus

    work = ROOT / ".cache" / "bench-shots"
    work.mkdir(parents=True, exist_ok=True)
    path, meta = work / "corpus.mp4", work / "corpus.json"
    if not rebuild and path.exists() and meta.exists():
        return CorpusTruth.from_json(meta.read_text())
    if not (SHARED / "README.md").is_file():
        raise SystemExit(f"real media not present at {SHARED}")
    t0 = time.perf_counter()
    truth = build_corpus(path, SHARED, BENCH_SEGMENTS, BENCH_JOINS)
    meta.write_text(truth.to_json())
    print(f"corpus built in {time.perf_counter() - t0:.0f} s", flush=True)
    return truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rebuild", action="store_true", help="build the corpus again")
    ap.add_argument("--only", nargs="*", choices=DETECTORS, help="run only these")
    ap.add_argument("--before", metavar="FILE", help="another version of analysis/shots.py to compare, e.g. "
                    "`git show REV:engine/montage_ai/analysis/shots.py > /tmp/shots_before.py`")
    ap.add_argument("--clip", type=Path, help="also time every detector on this clip (no ground truth: "
                    "speed and boundary counts only), e.g. a long take from ../shared/media")
    ap.add_argument("--one", nargs=2, metavar=("DETECTOR", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], Path(args.one[1]))))
        return
    from montage_ai.analysis.boundary_corpus import score

    truth = corpus(args.rebuild)
    kinds = [k for k, _, _ in truth.boundaries]
    print(f"corpus: {truth.path.name}, {truth.frame_count} frames {truth.width}x{truth.height} at {truth.fps} fps, "
          f"{len(kinds)} boundaries ({kinds.count('cut')} cuts, {kinds.count('fade')} fades, "
          f"{kinds.count('dissolve')} dissolves); flashes/strobe/flicker inside shots at "
          f"{[(a, b) for _, a, b in truth.disturbances]}")
    try:
        import scenedetect  # noqa: F401
        names = list(args.only or DETECTORS)
    except ImportError:
        print("PySceneDetect not installed (pip install 'montage-ai[bench]'): skipping its rows")
        names = [n for n in (args.only or DETECTORS) if not n.startswith("scenedetect")]
    if args.before:
        os.environ["BENCH_SHOTS_BEFORE"] = str(Path(args.before).resolve())
    else:
        names = [n for n in names if n != "montage-before"]
    results: dict[str, list[dict]] = {n: [] for n in names}
    for _ in range(args.runs):          # interleaved, so a busy spell hits every detector alike
        for name in names:
            results[name].append(measured(name, truth.path))
    rows = []
    for name in names:
        runs = results[name]
        wall = statistics.median(r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        proc = statistics.median(r["proc_cpu"] for r in runs)
        frames = runs[0]["frames"]
        found = runs[0]["boundaries"]
        prf = score(found, truth.boundaries) if found is not None else None
        rows.append((name, frames, wall, cpu, proc, prf, runs[0]))
        extra = ""
        if found is not None:
            missed = [(k, a, b) for k, a, b in truth.boundaries
                      if not any((a - 2 <= f <= b + 2) for f in found)]
            false = [f for f in found if not any(a - 2 <= f <= b + 2 for _, a, b in truth.boundaries)]
            extra = f" missed {missed} false {false}"
        print(f"  {name}: walls {[round(r['wall'], 2) for r in runs]} cpu {[round(r['cpu'], 2) for r in runs]}{extra}",
              flush=True)
    print()
    print(f"| detector | fps | wall s | CPU s | proc CPU s | precision | recall | F1 |")
    print(f"|---|---|---|---|---|---|---|---|")
    for name, frames, wall, cpu, proc, prf, _ in rows:
        p, r, f = prf if prf else (None, None, None)
        q = (lambda x: f"{x:.2f}" if x is not None else "-")
        print(f"| {LABELS[name]} | {truth.frame_count / wall:.0f} | {wall:.2f} | {cpu:.2f} | {proc:.2f} | {q(p)} | {q(r)} | {q(f)} |")
    if args.clip:
        from montage_ai.media.probe import probe

        frames = probe(args.clip).frame_count
        print(f"\n{args.clip.name} ({frames} frames), no ground truth:\n")
        print("| detector | fps | wall s | CPU s | proc CPU s | boundaries |")
        print("|---|---|---|---|---|---|")
        clip_runs: dict[str, list[dict]] = {n: [] for n in names}
        for _ in range(args.runs):
            for name in names:
                clip_runs[name].append(measured(name, args.clip))
        for name in names:
            runs = clip_runs[name]
            wall = statistics.median(r["wall"] for r in runs)
            found = runs[0]["boundaries"]
            print(f"| {LABELS[name]} | {frames / wall:.0f} | {wall:.2f} | {statistics.median(r['cpu'] for r in runs):.2f} | "
                  f"{statistics.median(r['proc_cpu'] for r in runs):.2f} | {len(found) if found is not None else '-'} |")
    by = {n: (truth.frame_count / w, prf) for n, fr, w, _, _, prf, _ in rows}
    if "montage" in by and "scenedetect-content" in by:
        print(f"\nMontage AI / PySceneDetect content: {by['montage'][0] / by['scenedetect-content'][0]:.2f}x fps, "
              f"F1 {by['montage'][1][2]:.2f} vs {by['scenedetect-content'][1][2]:.2f}")


if __name__ == "__main__":
    main()
