"""The LLM Creative Director against hostile and broken servers (issue 11, items 3 and 4).

Every case runs over real HTTP on 127.0.0.1: a hostile stand-in (tests/standins/hostile_llm.py)
for replies no real server should send, and the cgpu serve stand-in for the failures the real
`cgpu serve` produces with a scripted gemini. For each case the director must return offline
plans (never raise), name what happened in ONE fallback line, send the number of requests the
retry policy allows (a retry only when the request never reached the model), count in
`requests` only the requests that were answered, and finish within its timeout plus a little.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hostile import assert_clean, cli, small_media, temp_files
from montage_ai import doctor
from montage_ai.analysis.music import MusicAnalysis, Section
from montage_ai.analysis.shots import ClipAnalysis, Shot
from montage_ai.direct.backends import MAX_REPLY_BYTES, configured_backend, ollama_base_url
from montage_ai.direct.llm import DirectorResult, direct
from montage_ai.direct.reply import MAX_REPLY_CHARS, REPAIR_EXCERPT_CHARS
from montage_ai.media.probe import MediaInfo
from montage_ai.settings import Settings
from standins import (
    CgpuServeStandIn,
    Error,
    Flood,
    Hangup,
    HostileLLM,
    OllamaStandIn,
    Raw,
    Silent,
    Text,
    Trickle,
    Truncated,
    auth_error,
    cli_missing,
    free_port,
    invalid_json,
    quota_exceeded,
)

TIMEOUT_S = 2.0       # LLM_TIMEOUT for every case
BACKOFF_S = 0.05      # LLM_BACKOFF: retries wait 0.05 s, then 0.1 s
SLACK_S = 3.0         # "within its timeout plus a few seconds"
GOOD = json.dumps({"style": "fast", "rationale": [{"decision": "style", "reason": "the brief asks for speed"}]})


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def music() -> MusicAnalysis:
    """A 14 s song at 120 BPM, calm then loud: what the director is told about the music."""
    beats = [i * 0.5 for i in range(28)]
    return MusicAnalysis(path=Path("/song.wav"), duration_s=14.0, file_duration_s=14.0, tempo_bpm=120.0,
                         beat_times_s=beats, downbeat_times_s=beats[::4], energy_hop_s=0.1, energy=[0.5] * 140,
                         sections=[Section(start_s=0, end_s=6, label="verse", energy=0.2, level="low"),
                                   Section(start_s=6, end_s=14, label="drop", energy=0.9, level="high")])


@pytest.fixture(scope="module")
def clips() -> list[ClipAnalysis]:
    shots = [Shot(id=f"c00s{i:02d}", clip_index=0, start_s=2.0 * i, end_s=2.0 * i + 2, score=0.8, motion=0.1 * i,
                  sharpness=0.5, brightness=0.5, usable_s=2.0) for i in range(4)]
    media = MediaInfo(path=Path("/clip.mp4"), size_bytes=1, mtime_ns=1, duration_s=8.0, has_video=True)
    return [ClipAnalysis(media=media, analysis_version=1, shots=shots, unusable=[], sample_times_s=[], motion=[],
                         sharpness=[], brightness=[], quality=[])]


def _settings(tmp_path: Path, port: int, **kw) -> Settings:
    base = dict(cgpu_enabled=True, cgpu_host="127.0.0.1", cgpu_port=port, cache_dir=tmp_path / "cache",
                prompt="fast and loud", llm_timeout=TIMEOUT_S, llm_backoff=BACKOFF_S, style="dynamic",
                ollama_host="", openai_base_url="")
    return Settings(**{**base, **kw})


def _ask(s: Settings, music, clips) -> tuple[DirectorResult, float]:
    t0 = time.monotonic()
    result = direct(s, music, clips)
    return result, time.monotonic() - t0


def _assert_fallback(result: DirectorResult, *needles: str, answered: int, attempts: int) -> str:
    """Offline plans, one fallback line naming what happened, and the request counts."""
    rec = result.record
    assert rec.path == "offline-fallback", rec
    assert [p.director for p in result.plans] == ["offline:dynamic"]
    assert len(rec.fallbacks) == 1 and "\n" not in rec.fallbacks[0], rec.fallbacks
    reason = rec.fallbacks[0]
    for needle in needles:
        assert needle in reason, (needle, reason)
    assert len(reason) < 700, reason
    assert (rec.requests, rec.attempts) == (answered, attempts), rec
    assert f"{answered} request(s)" in rec.line() and reason in rec.line()
    return reason


# --------------------------------------------------------------------------- replies that are not a reply


HTTP_CASES = {
    "html_body": (Raw(b"<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
                  ("invalid_reply: ", "answered 200 with a body that is not JSON", "text/html", "<html>")),
    "empty_body": (Raw(b""), ("invalid_reply: ", "not JSON", "an empty body")),
    "json_not_a_response": (Raw(b'{"id": "x", "object": "chat.completion", "choices": []}'),
                            ("invalid_reply: ", "JSON that is not a Responses object", "output: Field required")),
    "json_list": (Raw(b"[1, 2, 3]"), ("invalid_reply: ", "not a Responses object", "valid dictionary")),
    "json_output_wrong_type": (Raw(b'{"output": 5}'), ("invalid_reply: ", "not a Responses object", "output:")),
    "deep_body": (Raw(b"[" * 100_000 + b"]" * 100_000), ("invalid_reply: ", "nested more than 64 levels deep")),
    "nan_in_body": (Raw(b'{"output": [], "temperature": NaN}'), ("invalid_reply: ", "NaN is not a number JSON allows")),
    "gzip_not_asked_for": (Raw(b"\x1f\x8b\x08\x00garbage", encoding="gzip"),
                           ("invalid_reply: ", "gzip-compressed reply although none was asked for")),
    "truncated_body": (Truncated(b'{"object": "response", "output": [', announced=5000),
                       ("truncated: ", "closed in the middle of the reply", "of 5,000 bytes arrived")),
}


@pytest.mark.parametrize("case", list(HTTP_CASES))
def test_a_broken_200_falls_back_without_a_retry(case, tmp_path, music, clips):
    behaviour, needles = HTTP_CASES[case]
    with HostileLLM() as srv:
        srv.script(behaviour, Text(GOOD), Text(GOOD))
        result, took = _ask(_settings(tmp_path, srv.port), music, clips)
        assert len(srv.model_requests) == 1     # the server answered: the model may have run
    _assert_fallback(result, *needles, answered=1, attempts=1)
    assert took < TIMEOUT_S + SLACK_S


@pytest.mark.parametrize("chunked", [False, True], ids=["content_length", "chunked"])
def test_a_huge_reply_is_not_read_and_not_sent_back(chunked, tmp_path, music, clips):
    size = 60_000_000
    with HostileLLM() as srv:
        srv.script(Flood(size, chunked=chunked), Text(GOOD))
        result, took = _ask(_settings(tmp_path, srv.port), music, clips)
        assert len(srv.model_requests) == 1     # no repair request quoting it
        sent = srv.answers[0]
    needle = "stopped reading it" if chunked else f"a {size:,}-byte reply (limit {MAX_REPLY_BYTES:,}); not read"
    _assert_fallback(result, "too_large: ", needle, answered=1, attempts=1)
    # the client hung up early: the server could not write the body (only socket buffers' worth)
    assert not sent.complete and sent.bytes_sent < 20_000_000, sent
    assert result.record.raw_replies == [] and took < TIMEOUT_S + SLACK_S


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
def test_connection_dropped_before_any_answer_is_retried(reset, tmp_path, music, clips):
    with HostileLLM() as srv:
        srv.script(Hangup(reset=reset), Hangup(reset=reset), Hangup(reset=reset), Text(GOOD))
        result, took = _ask(_settings(tmp_path, srv.port), music, clips)
        assert len(srv.model_requests) == 3     # the request never got an answer: two retries
    how = "reset" if reset else "closed"
    _assert_fallback(result, "connection: ", f"{how} the connection without answering", "(3 attempts)",
                     answered=0, attempts=3)
    assert took < TIMEOUT_S + SLACK_S


def test_a_retry_that_gets_through_is_used(tmp_path, music, clips):
    with HostileLLM() as srv:
        srv.script(Hangup(), Text(GOOD))
        result, _ = _ask(_settings(tmp_path, srv.port), music, clips)
        assert len(srv.model_requests) == 2
    assert result.record.path == "llm" and result.plans[0].style == "fast"
    assert (result.record.requests, result.record.attempts) == (1, 2)
    assert "1 request(s), 1 attempt(s) got no answer" in result.record.line()


def test_connection_refused_is_retried_and_says_so(tmp_path, music, clips):
    port = free_port()          # nothing listens there
    result, took = _ask(_settings(tmp_path, port), music, clips)
    _assert_fallback(result, "connection: ", f"connection refused at cgpu serve at 127.0.0.1:{port} (3 attempts)",
                     "./montage-ai.sh cgpu-start", answered=0, attempts=3)
    assert took < 1 + SLACK_S


@pytest.mark.parametrize("behaviour", [Silent(30), Trickle(interval_s=0.2, total_bytes=1000)],
                         ids=["silent", "trickle"])
def test_a_server_that_never_finishes_times_out_once(behaviour, tmp_path, music, clips):
    # "trickle": each read is quick, so only the deadline on the whole request stops it
    with HostileLLM() as srv:
        srv.script(behaviour, Text(GOOD))
        port = srv.port
        result, took = _ask(_settings(tmp_path, port), music, clips)
        assert len(srv.model_requests) == 1
    answered = 1 if isinstance(behaviour, Trickle) else 0
    _assert_fallback(result, "timeout: ", f"no complete reply from cgpu serve at 127.0.0.1:{port} within 2 s",
                     answered=answered, attempts=1)
    assert TIMEOUT_S - 0.2 < took < TIMEOUT_S + SLACK_S


# --------------------------------------------------------------------------- model text that is not a plan


def _inf_reply(number: str) -> str:
    return ('{"style": "fast", "pacing": {"high": {"min_beats": %s, "max_beats": 4}}}' % number)


TEXT_CASES = {
    "infinity_beats": (_inf_reply("Infinity"), 1, "Infinity is not a number JSON allows"),
    "huge_float_beats": (_inf_reply("1e400"), 1, "1e400 is out of range"),
    "nan_beats": (_inf_reply("NaN"), 1, "NaN is not a number JSON allows"),
    "variants_int": ('{"variants": 5}', 1, "variants: expected a non-empty list of plan objects, not 5"),
    "variants_object": ('{"variants": {"style": "fast"}}', 1, "variants: expected a non-empty list of plan objects"),
    "variants_int_when_asked_for_two": ('{"variants": 5}', 2, "variants: Input should be a valid list"),
    "variants_object_when_asked_for_two": ('{"variants": {"0": {"style": "fast"}}}', 2,
                                           "variants: Input should be a valid list"),
    "long_style_name": (json.dumps({"style": "x" * 100_000}), 1, "style: String should have at most 40 characters"),
}


@pytest.mark.parametrize("case", list(TEXT_CASES))
def test_a_malformed_plan_is_repaired_once_then_falls_back(case, tmp_path, music, clips):
    text, variants, needle = TEXT_CASES[case]
    with CgpuServeStandIn() as srv:
        srv.script(Text(text), Text(text))
        result, took = _ask(_settings(tmp_path, srv.port, variants=variants), music, clips)
        bodies = [r.json for r in srv.model_requests]
    assert len(bodies) == 2                      # the first request and one repair
    _assert_fallback(result, "the reply did not validate after one repair", needle, answered=2, attempts=2)
    repair = bodies[1]["input"]
    assert needle in repair and len(repair) < len(bodies[0]["input"]) + 2 * REPAIR_EXCERPT_CHARS + 2000
    assert took < TIMEOUT_S + SLACK_S


def test_a_long_rejected_reply_is_quoted_only_in_part(tmp_path, music, clips):
    prose = "Let me think about this brief. " * 4000          # 124,000 characters, then a plan that fails
    text = prose + json.dumps({"style": "nope"})
    with CgpuServeStandIn() as srv:
        srv.script(Text(text), Text(GOOD))
        result, _ = _ask(_settings(tmp_path, srv.port), music, clips)
        first, repair = (r.json["input"] for r in srv.model_requests)
    assert result.record.path == "llm+repair"
    assert "[... " in repair and "more characters cut]" in repair and "'nope' is not one of" in repair
    assert len(repair) - len(first) < REPAIR_EXCERPT_CHARS + 2000 and text not in repair


@pytest.mark.parametrize("case", ["deep_text", "oversized_text"])
def test_garbage_text_is_not_repaired(case, tmp_path, music, clips):
    if case == "deep_text":
        text, needle = "[" * 10_000 + "]" * 10_000, "the reply is nested more than 16 levels deep"
    else:
        text, needle = "{" + "x" * 500_000, f"more than the {MAX_REPLY_CHARS:,} allowed"
    with CgpuServeStandIn() as srv:
        srv.script(Text(text), Text(GOOD))
        result, took = _ask(_settings(tmp_path, srv.port), music, clips)
        assert len(srv.model_requests) == 1      # no repair quoting garbage back
    _assert_fallback(result, "unusable_reply: ", needle, "not repaired", answered=1, attempts=1)
    assert len(result.record.raw_replies[0]) < MAX_REPLY_CHARS // 10 + 100   # the record keeps an excerpt
    assert took < TIMEOUT_S + SLACK_S


# --------------------------------------------------------------------------- what the real cgpu serve sends


CGPU_CASES = {
    "invalid_json": (invalid_json(), ("http_error: ", "answered 502 invalid_json: Gemini CLI returned malformed JSON",
                                      "not the JSON cgpu serve expects")),
    "auth": (auth_error(), ("auth: ", "answered 502 gemini_cli_error: Please set an Auth method in your "
                                      "/home/user/.gemini/settings.json", "log gemini in")),
    "quota_daily": (quota_exceeded(), ("quota: ", "answered 502 gemini_cli_error: "
                                                  "You have exhausted your daily quota on this model.")),
    "quota_after_retry_warnings": (
        quota_exceeded("Resource has been exhausted (e.g. check quota).\nSuggested retry after 10s.",
                       "RetryableQuotaError", session_id=None,
                       warnings=['Attempt 1 failed: Quota exceeded.\nSuggested retry after 10s.. Retrying after 10000ms...',
                                 'GaxiosError: {\n  "error": {\n    "code": 429,\n    "message": "not this one"\n  }\n}']),
        ("quota: ", "gemini_cli_error: Resource has been exhausted (e.g. check quota). Suggested retry after 10s.")),
    "gemini_missing": (cli_missing(), ("http_error: ", "answered 500 gemini_cli_missing: Unable to find Gemini CLI")),
}


@pytest.mark.parametrize("case", list(CGPU_CASES))
def test_cgpu_serve_errors_are_reported_in_one_line_and_not_retried(case, tmp_path, music, clips):
    reply, needles = CGPU_CASES[case]
    with CgpuServeStandIn() as srv:
        srv.script(reply, Text(GOOD), Text(GOOD))
        result, took = _ask(_settings(tmp_path, srv.port), music, clips)
        assert len(srv.model_requests) == 1      # gemini ran: one run, one unit of quota, no more
    reason = _assert_fallback(result, *needles, answered=1, attempts=1)
    assert "{" not in reason and '"error"' not in reason    # no JSON dumped into the summary
    assert took < TIMEOUT_S + SLACK_S


def test_cgpu_serve_timeout_is_not_retried(tmp_path, music, clips):
    # the real server's --timeout: gemini is killed, the client gets 502 empty_response
    with CgpuServeStandIn(server_timeout_s=0.5) as srv:
        srv.script(Text(GOOD, delay_s=30), Text(GOOD), Text(GOOD))
        result, took = _ask(_settings(tmp_path, srv.port), music, clips)
        assert len(srv.model_requests) == 1
    _assert_fallback(result, "http_error: ", "answered 502 empty_response: Gemini CLI produced no output",
                     "--timeout", answered=1, attempts=1)
    assert 0.5 <= took < TIMEOUT_S + SLACK_S


# --------------------------------------------------------------------------- the chat backends


@pytest.mark.parametrize("behaviour, needles, sent, answered", [
    (Raw(b"not json at all", content_type="text/plain"), ("invalid_reply: ", "ollama at", "not JSON"), 1, 1),
    (Raw(b'{"output": []}'), ("invalid_reply: ", "not a chat.completion object", "choices: Field required"), 1, 1),
    (Raw(b'{"choices": []}'), ("invalid_reply: ", "choices: List should have at least 1 item"), 1, 1),
    (Hangup(), ("connection: ", "closed the connection without answering (3 attempts)"), 3, 0),
    (Error(503, "overloaded", "server overloaded"), ("http_error: ", "answered 503 overloaded: server overloaded"), 1, 1),
    (Error(429, "rate_limit", "slow down"), ("quota: ", "answered 429"), 1, 1),
], ids=["not_json", "responses_object", "no_choices", "hangup", "503", "429"])
def test_ollama_backend_survives_the_same(behaviour, needles, sent, answered, tmp_path, music, clips):
    with HostileLLM() as srv:
        srv.script(behaviour, behaviour, behaviour, Text(GOOD))
        s = _settings(tmp_path, srv.port, cgpu_enabled=False, ollama_host=f"127.0.0.1:{srv.port}")
        result, took = _ask(s, music, clips)
        assert len(srv.model_requests) == sent
        assert {r.path for r in srv.model_requests} == {"/v1/chat/completions"}
    assert result.record.backend == "ollama"
    _assert_fallback(result, *needles, answered=answered, attempts=sent)
    assert took < TIMEOUT_S + SLACK_S


# --------------------------------------------------------------------------- the cache


def test_a_good_reply_is_cached_atomically(tmp_path, music, clips):
    with CgpuServeStandIn() as srv:
        srv.script(Text(GOOD))
        first, _ = _ask(_settings(tmp_path, srv.port), music, clips)
        second, _ = _ask(_settings(tmp_path, srv.port), music, clips)
        assert len(srv.model_requests) == 1
    assert first.record.path == "llm" and second.record.cache_hit and second.record.requests == 0
    cached = list((tmp_path / "cache" / "director").iterdir())
    assert len(cached) == 1 and json.loads(cached[0].read_text()) == {"reply": GOOD}
    assert temp_files(tmp_path / "cache") == []


def test_a_corrupt_cache_entry_is_ignored(tmp_path, music, clips):
    with CgpuServeStandIn() as srv:
        srv.script(Text(GOOD), Text(GOOD))
        _ask(_settings(tmp_path, srv.port), music, clips)
        entry = next((tmp_path / "cache" / "director").iterdir())
        entry.write_text("[" * 100_000)
        again, _ = _ask(_settings(tmp_path, srv.port), music, clips)
        assert len(srv.model_requests) == 2
    assert again.record.path == "llm" and not again.record.cache_hit


# --------------------------------------------------------------------------- doctor


def test_doctor_says_what_health_proves_and_probe_sends_one_request(tmp_path):
    with CgpuServeStandIn() as srv:
        srv.script(auth_error())
        s = _settings(tmp_path, srv.port)
        plain = doctor.report(s)
        assert srv.model_requests == []          # /health only: no gemini run
        probed = doctor.report(s, probe=True)
        assert len(srv.model_requests) == 1
        srv.script(Text('{"ok": true}'))
        good = doctor.report(s, probe=True)
    line = next(ln for ln in plain.splitlines() if "cgpu serve (enabled)" in ln)
    assert "listening" in line and "does not prove that gemini answers" in line and "doctor --probe" in line
    assert "healthy" not in plain and "probe " not in plain
    probe = next(ln for ln in probed.splitlines() if ln.startswith("  probe    cgpu"))
    assert "FAILED" in probe and "auth: " in probe and "Please set an Auth method" in probe
    ok = next(ln for ln in good.splitlines() if ln.startswith("  probe    cgpu"))
    assert "ok, gemini-2.5-flash answered in" in ok and '{"ok": true}' in ok


def test_doctor_probe_is_bounded_by_a_short_timeout(tmp_path):
    with HostileLLM() as srv:
        srv.script(Silent(30))
        t0 = time.monotonic()
        text = doctor.report(_settings(tmp_path, srv.port, llm_timeout=1.0), probe=True)
        took = time.monotonic() - t0
    probe = next(ln for ln in text.splitlines() if ln.startswith("  probe    cgpu"))
    assert "FAILED" in probe and "timeout: " in probe and took < 1.0 + 2 * SLACK_S


def test_doctor_probe_without_any_backend(tmp_path):
    port = free_port()
    text = doctor.report(_settings(tmp_path, port, cgpu_enabled=False), probe=True)
    assert "no LLM backend configured" in text


@pytest.mark.parametrize("value, url", [
    ("localhost:11434", "http://localhost:11434"),
    ("localhost", "http://localhost:11434"),
    (" 127.0.0.1:5000/ ", "http://127.0.0.1:5000"),
    ('"localhost:5000"', "http://localhost:5000"),
    ("0.0.0.0", "http://127.0.0.1:11434"),
    ("[::1]:5000", "http://[::1]:5000"),
    ("http://localhost", "http://localhost:80"),
    ("https://ollama.example.com/", "https://ollama.example.com:443"),
    ("http://gpu-box:11434/ollama", "http://gpu-box:11434/ollama"),
    (":5000", "http://127.0.0.1:5000"),
])
def test_ollama_host_is_read_like_ollama_reads_it(value, url):
    assert ollama_base_url(value) == url


def test_ollama_host_without_a_scheme_works_in_doctor_and_director(tmp_path, music, clips):
    with OllamaStandIn(models=("llama3.1:8b",)) as srv:
        srv.script(Text(GOOD))
        port = srv.port
        s = _settings(tmp_path, port, cgpu_enabled=False, ollama_host=f"127.0.0.1:{port}")
        text = doctor.report(s)
        backend = configured_backend(s)
        result, _ = _ask(s, music, clips)
    line = next(ln for ln in text.splitlines() if "director   ollama" in ln)
    assert f"ollama at http://127.0.0.1:{port} " in line and "reachable (200)" in line
    assert backend is not None and backend.where() == f"ollama at http://127.0.0.1:{port}/v1"
    assert result.record.path == "llm" and result.record.backend == "ollama"


# --------------------------------------------------------------------------- the real command line


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return small_media(tmp_path_factory.mktemp("hostile_media"))


@pytest.mark.slow
@pytest.mark.parametrize("case", ["deep_body", "quota"])
def test_the_command_line_survives_a_hostile_server(case, media, tmp_path):
    clips, music = media
    server = HostileLLM() if case == "deep_body" else CgpuServeStandIn()
    with server as srv:
        srv.script(Raw(b"{" * 50_000) if case == "deep_body" else quota_exceeded())
        port = srv.port
        env = {"CGPU_HOST": "127.0.0.1", "CGPU_PORT": str(port), "LLM_TIMEOUT": "5", "LLM_BACKOFF": "0.05"}
        out = tmp_path / "out"
        result = cli("run", "--clips", clips, "--music", music, "--out", out, "--duration", "6", "--resolution", "360p",
                     "--cgpu", "--prompt", "hit hard on the drop", cache=tmp_path / "cache", env=env)
        assert len(srv.model_requests) == 1
    assert_clean(result, ok=True, written=(out, tmp_path / "cache"))
    needle = ("fallback: invalid_reply: cgpu serve at 127.0.0.1:%d answered 200 with an unusable body: "
              "the body is nested more than 64 levels deep" % port if case == "deep_body" else
              "fallback: quota: cgpu serve at 127.0.0.1:%d answered 502 gemini_cli_error: "
              "You have exhausted your daily quota on this model." % port)
    assert needle in result.stdout, result.stdout
    assert "director: offline-fallback via cgpu (gemini-2.5-flash); 1 request(s)" in result.stdout
    assert (out / "montage.mp4").is_file()
