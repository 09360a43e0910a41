"""The Creative Director against real HTTP servers on 127.0.0.1 that follow the contracts of
cgpu serve (Responses API only) and Ollama (chat completions). Every scenario must end in a
valid montage with the path taken reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from media_tools import median_colors, video_facts
from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip
from montage_ai.pipeline import run
from montage_ai.settings import Settings
from standins import CgpuServeStandIn, OllamaStandIn, Text, free_port, quota_exceeded

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("director")
    colors = distinct_colors(9)
    for c in range(3):
        make_clip(root / "clips" / f"clip{c}.mp4",
                  [ShotSpec(duration_s=4.0 + s, color=colors[c * 3 + s]) for s in range(3)], width=320, height=180)
    music = make_drum_track(root / "drums.wav", bpm=120, duration_s=14,
                            sections=[(0.0, "low"), (6.0, "high")]).path
    return root, music


def plan_reply(style="dynamic", **kw) -> str:
    return json.dumps({"style": style, **kw, "rationale": [{"decision": "style", "reason": "fits the brief"}]})


CALM = plan_reply("documentary", cut_on="beat",
                  pacing={"low": {"min_beats": 8, "max_beats": 8}, "mid": {"min_beats": 8, "max_beats": 8},
                          "high": {"min_beats": 6, "max_beats": 6}},
                  transitions={"kind": "cut"})
FAST = plan_reply("fast", pacing={"low": {"min_beats": 1, "max_beats": 1}, "mid": {"min_beats": 1, "max_beats": 1},
                                  "high": {"min_beats": 1, "max_beats": 1}})


def _settings(media, tmp_path, **kw) -> Settings:
    root, music = media
    base = dict(clips=root / "clips", music=music, out=tmp_path / "out", duration=10.0, resolution="360p",
                cache_dir=tmp_path / "cache", llm_backoff=0.01, prompt="energetic summer cut, hit hard on the drop")
    base.update(kw)
    return Settings(**base)


def _cgpu(srv: CgpuServeStandIn) -> dict:
    return {"cgpu_enabled": True, "cgpu_host": srv.host, "cgpu_port": srv.port}


def _plan_json(summary) -> dict:
    return json.loads(summary.plan.read_text())


def _assert_valid_montage(summary):
    n, _, vdur, adur = video_facts(summary.video)
    assert n == summary.frames and abs(adur - vdur) < 0.05


def test_good_plan_through_cgpu_serve(media, tmp_path):
    with CgpuServeStandIn() as srv:
        srv.script(Text(FAST))
        s = run(_settings(media, tmp_path, **_cgpu(srv)), progress=False)
        assert len(srv.model_requests) == 1
        body = srv.model_requests[0].json
    _assert_valid_montage(s)
    assert s.director.path == "llm" and s.director.backend == "cgpu" and s.director.model == "gemini-2.5-flash"
    # only the Responses API was used, with the brief as data inside the input, never in the instructions
    assert {r.path for r in srv.requests} == {"/v1/responses"}
    assert "energetic summer cut" in body["input"] and "energetic summer cut" not in body["instructions"]
    assert "/" not in json.dumps(json.loads(body["input"])["analysis"]).replace("\\/", "")  # no paths sent
    plan = _plan_json(s)
    assert plan["plan"]["style"] == "fast" and plan["director"]["raw_replies"] == [FAST]
    meta = json.loads(s.timeline.read_text())["metadata"]["montage_ai"]
    assert meta["director_record"]["brief"].startswith("energetic") and meta["director_record"]["raw_replies"] == [FAST]
    assert meta["plan"]["style"] == "fast" and meta["director_record"]["backend"] == "cgpu"
    assert "llm" in s.text() and "cgpu" in s.text()


def test_fenced_json_is_accepted(media, tmp_path):
    with CgpuServeStandIn() as srv:
        srv.script(Text("Here is the plan:\n```json\n" + FAST + "\n```\nEnjoy!"))
        s = run(_settings(media, tmp_path, **_cgpu(srv)), progress=False)
    assert s.director.path == "llm"
    _assert_valid_montage(s)


def test_invalid_json_then_a_valid_repair(media, tmp_path):
    with CgpuServeStandIn() as srv:
        srv.script(Text('{"style": "fast", "pacing": '), Text(FAST))
        s = run(_settings(media, tmp_path, **_cgpu(srv)), progress=False)
        repair = srv.model_requests[1].json
    assert s.director.path == "llm+repair" and s.director.requests == 2
    assert "rejected" in repair["input"] and "no parseable JSON" in repair["input"]
    _assert_valid_montage(s)


def test_out_of_bounds_values_are_repaired(media, tmp_path):
    bad = plan_reply("fast", pacing={"high": {"min_beats": 0, "max_beats": 99}}, target_duration_s=500)
    with CgpuServeStandIn() as srv:
        srv.script(Text(bad), Text(FAST))
        s = run(_settings(media, tmp_path, **_cgpu(srv)), progress=False)
        repair = srv.model_requests[1].json["input"]
    assert s.director.path == "llm+repair"
    assert "min_beats" in repair and "greater than or equal to 1" in repair
    _assert_valid_montage(s)


def test_unknown_shot_ids_fall_back_to_offline(media, tmp_path):
    bad = plan_reply("fast", favor_shots=["c99s99", "../../etc/passwd"])
    with CgpuServeStandIn() as srv:
        srv.script(Text(bad), Text(bad))
        s = run(_settings(media, tmp_path, **_cgpu(srv)), progress=False)
    assert s.director.path == "offline-fallback" and s.director.requests == 2
    assert "unknown shot IDs" in s.director.fallbacks[0]
    assert _plan_json(s)["plan"]["director"].startswith("offline")
    _assert_valid_montage(s)


def test_quota_error_is_not_retried(media, tmp_path):
    with CgpuServeStandIn() as srv:
        srv.script(quota_exceeded())
        s = run(_settings(media, tmp_path, **_cgpu(srv)), progress=False)
        assert len(srv.model_requests) == 1
    reason = s.director.fallbacks[0]
    assert s.director.path == "offline-fallback" and reason.startswith("quota")
    # gemini's pretty-printed JSON error is reduced to its one-line message
    assert "502 gemini_cli_error: You have exhausted your daily quota on this model." in reason
    assert "\n" not in reason and "{" not in reason
    assert s.director.requests == 1
    _assert_valid_montage(s)


def test_server_side_timeout_is_not_retried(media, tmp_path):
    # gemini ran (and spent quota) until cgpu serve killed it: asking again would cost as much again
    with CgpuServeStandIn(server_timeout_s=0.3) as srv:
        srv.script(Text(FAST, delay_s=5), Text(FAST, delay_s=5), Text(FAST, delay_s=5))
        s = run(_settings(media, tmp_path, llm_timeout=3.0, **_cgpu(srv)), progress=False)
        assert len(srv.model_requests) == 1
    assert s.director.path == "offline-fallback" and "502 empty_response" in s.director.fallbacks[0]
    assert s.director.requests == 1 and s.director.attempts == 1
    _assert_valid_montage(s)


def test_reply_slower_than_the_client_timeout(media, tmp_path):
    with CgpuServeStandIn(server_timeout_s=120) as srv:
        srv.script(Text(FAST, delay_s=3))
        s = run(_settings(media, tmp_path, llm_timeout=0.5, **_cgpu(srv)), progress=False)
        assert len(srv.model_requests) == 1  # a timeout is not retried
    assert s.director.path == "offline-fallback" and s.director.fallbacks[0].startswith("timeout")
    _assert_valid_montage(s)


def test_connection_refused_explains_cgpu_start(media, tmp_path):
    root, music = media
    port = free_port()
    env = {**os.environ, "MONTAGE_CACHE_DIR": str(tmp_path / "cache"), "CGPU_PORT": str(port), "LLM_BACKOFF": "0.01"}
    proc = subprocess.run([sys.executable, "-m", "montage_ai.cli", "-q", "run", "--clips", str(root / "clips"),
                           "--music", str(music), "--out", str(tmp_path / "out"), "--duration", "8",
                           "--resolution", "360p", "--cgpu", "--prompt", "calm"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"connection refused at cgpu serve at 127.0.0.1:{port}" in proc.stdout
    assert "./montage-ai.sh cgpu-start" in proc.stdout and "CGPU_HOST=host.docker.internal" in proc.stdout
    assert (tmp_path / "out" / "montage.mp4").is_file()


def test_chat_completions_on_cgpu_serve_is_a_404(media, tmp_path):
    # a user pointing an OpenAI-compatible client at cgpu serve: chat completions is 404 there
    with CgpuServeStandIn() as srv:
        s = run(_settings(media, tmp_path, openai_base_url=srv.base_url, openai_model="gemini-2.5-flash"),
                progress=False)
        assert {r.path for r in srv.requests} == {"/v1/chat/completions"}
    assert s.director.path == "offline-fallback" and "404 not_found" in s.director.fallbacks[0]
    _assert_valid_montage(s)


def test_ollama_gets_a_json_request(media, tmp_path):
    with OllamaStandIn(models=("llama3.1:8b",)) as srv:
        srv.script(Text(FAST))
        s = run(_settings(media, tmp_path, ollama_host=srv.url), progress=False)
        req = srv.chat_requests[0].json
    assert s.director.backend == "ollama" and s.director.path == "llm"
    assert req["response_format"] == {"type": "json_object"} and "stream" not in req
    _assert_valid_montage(s)


def test_openai_compatible_uses_structured_output(media, tmp_path):
    with OllamaStandIn(models=("some-model",)) as srv:
        srv.script(Text(FAST))
        s = run(_settings(media, tmp_path, openai_base_url=srv.base_url, openai_model="some-model"), progress=False)
        req = srv.chat_requests[0].json
    assert s.director.backend == "openai-compatible" and s.director.path == "llm"
    assert req["response_format"]["type"] == "json_schema"


def test_a_brief_measurably_changes_the_cut_and_the_render_follows(media, tmp_path):
    results = {}
    for name, reply in (("calm", CALM), ("fast", FAST)):
        with CgpuServeStandIn() as srv:
            srv.script(Text(reply))
            s = run(_settings(media, tmp_path / name, prompt=f"{name} brief", **_cgpu(srv)), progress=False)
        segs = _plan_json(s)["segments"]
        colors = median_colors(s.video)
        jumps = np.flatnonzero(np.abs(np.diff(colors, axis=0)).max(axis=1) > 60) + 1
        assert list(jumps) == [g["record_start_frame"] for g in segs[1:]]  # the render follows the plan
        results[name] = np.mean([g["beats"] for g in segs])
    assert results["calm"] >= 5.5 and results["fast"] <= 1.2, results


def test_second_identical_run_makes_no_request(media, tmp_path):
    with CgpuServeStandIn() as srv:
        srv.script(Text(FAST))
        first = run(_settings(media, tmp_path, **_cgpu(srv)), progress=False)
        second = run(_settings(media, tmp_path, out=tmp_path / "again", **_cgpu(srv)), progress=False)
        assert len(srv.model_requests) == 1
    assert not first.director.cache_hit and second.director.cache_hit and second.director.requests == 0
    assert "cache hit" in second.text()
    assert second.frames == first.frames


def test_variants_in_one_request(media, tmp_path):
    with CgpuServeStandIn() as srv:
        srv.script(Text(json.dumps({"variants": [json.loads(FAST), json.loads(CALM)]})))
        s = run(_settings(media, tmp_path, variants=2, **_cgpu(srv)), progress=False)
        assert len(srv.model_requests) == 1
    assert len(s.variants) == 1 and s.variants[0].is_file()
    first = _plan_json(s)["plan"]["style"]
    second = json.loads((s.variants[0].parent / "plan.json").read_text())["plan"]["style"]
    assert (first, second) == ("fast", "documentary")


def test_brief_without_any_backend_says_so(media, tmp_path):
    s = run(_settings(media, tmp_path), progress=False)
    assert s.director.path == "offline-fallback" and "no LLM is configured" in s.director.fallbacks[0]
    _assert_valid_montage(s)


def test_the_chosen_style_reaches_the_llm_as_its_starting_preset(media, tmp_path):
    """--style with an LLM configured is not dropped: the request names it as the user's preset
    (and the instructions say to start from it); without --style the request names none."""
    with CgpuServeStandIn() as srv:
        srv.script(Text(plan_reply("wedding")), Text(FAST))
        chosen = run(_settings(media, tmp_path / "a", style="wedding", **_cgpu(srv)), progress=False)
        plain = run(_settings(media, tmp_path / "b", **_cgpu(srv)), progress=False)
        sent = [json.loads(r.json["input"]) for r in srv.model_requests]
        instructions = srv.model_requests[0].json["instructions"]
    assert sent[0]["style"] == "wedding" and "style" not in sent[1]
    assert "the user chose that preset" in instructions
    assert chosen.director.path == plain.director.path == "llm"
    assert _plan_json(chosen)["plan"]["style"] == "wedding"
