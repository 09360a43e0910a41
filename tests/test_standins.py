"""The LLM stand-ins honour the contracts of the services they replace.

Why: engine tests trust these servers to fail and answer like cgpu serve and Ollama do; if a
stand-in drifted from the real contract (see /work/shared/notes/cgpu.md), those tests would
prove nothing. Everything here goes through real HTTP with the real `openai` client and
`requests`.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import openai
import pydantic
import pytest
import requests
from openai import OpenAI

from standins import (
    CgpuServeStandIn,
    Error,
    OllamaStandIn,
    Text,
    auth_error,
    cli_error,
    cli_failure,
    cli_missing,
    empty_response,
    free_port,
    install_fake_cgpu,
    invalid_json,
    quota_exceeded,
)

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def cgpu() -> Iterator[CgpuServeStandIn]:
    with CgpuServeStandIn(default_text='{"ok": true}', server_timeout_s=0.3) as srv:
        yield srv


@pytest.fixture
def ollama() -> Iterator[OllamaStandIn]:
    with OllamaStandIn(default_text='{"ok": true}', models=["llama3.2:latest", "qwen2.5:7b"]) as srv:
        yield srv


def _client(srv: CgpuServeStandIn, **kw: Any) -> OpenAI:
    return OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0, **kw)


def _post(srv: CgpuServeStandIn, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(f"{srv.base_url}/responses", data=data, headers=headers or JSON, timeout=10)


# ----------------------------------------------------------------------------- cgpu serve


def test_cgpu_server_basics(cgpu: CgpuServeStandIn) -> None:
    assert cgpu.host == "127.0.0.1" and cgpu.port > 0
    assert cgpu.base_url == f"http://127.0.0.1:{cgpu.port}/v1"


def test_cgpu_responses_with_the_real_client(cgpu: CgpuServeStandIn) -> None:
    cgpu.script(Text('  {"style": "dynamic"}\n'))
    client = _client(cgpu)  # default (lenient) parsing, as the engine uses it
    resp = client.responses.create(model="gemini-2.5-flash", instructions="Answer JSON.", input="Plan it")
    assert resp.output_text == '{"style": "dynamic"}'  # gemini's response is trimmed by cgpu
    assert resp.output[0].content[0].text == resp.output_text
    assert resp.id.startswith("resp_") and resp.output[0].id.startswith("msg_")
    assert resp.model == "gemini-2.5-flash" and resp.status == "completed"
    assert resp.usage is not None and resp.usage.total_tokens == 0
    assert isinstance(resp.created_at, (int, float))
    req = cgpu.model_requests[-1]
    assert req.body == {"model": "gemini-2.5-flash", "instructions": "Answer JSON.", "input": "Plan it"}
    assert req.headers["content-type"] == "application/json"


def test_cgpu_payload_fails_strict_validation_only_on_cache_write_tokens(cgpu: CgpuServeStandIn) -> None:
    """The real payload lacks usage.input_tokens_details.cache_write_tokens, which this openai
    release requires: a client with _strict_response_validation=True rejects cgpu's replies."""
    from openai.types.responses import Response

    payload = _post(cgpu, {"input": "x"}).json()
    with pytest.raises(pydantic.ValidationError) as exc:
        Response.model_validate(payload)
    assert [e["loc"] for e in exc.value.errors()] == [("usage", "input_tokens_details", "cache_write_tokens")]
    with pytest.raises(openai.APIResponseValidationError):
        _client(cgpu, _strict_response_validation=True).responses.create(model="m", input="x")


def test_cgpu_default_text_and_default_model(cgpu: CgpuServeStandIn) -> None:
    r = _post(cgpu, {"input": "hi"})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "gemini-2.5-flash" and body["output_text"] == '{"ok": true}'
    assert body["object"] == "response" and isinstance(body["created_at"], int)
    assert body["output"][0]["content"][0] == {"type": "output_text", "text": '{"ok": true}',
                                               "annotations": [], "logprobs": []}
    assert _post(cgpu, {"model": "gemini-2.5-pro", "input": "hi"}).json()["model"] == "gemini-2.5-pro"


def test_cgpu_input_as_a_list_of_items(cgpu: CgpuServeStandIn) -> None:
    resp = _client(cgpu).responses.create(
        model="gemini-2.5-flash",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "clip list"},
                                            {"type": "input_image", "image_url": "data:image/png;base64,AA=="}]}],
    )
    assert resp.output_text == '{"ok": true}'
    assert cgpu.model_requests[-1].json["input"][0]["content"][0]["text"] == "clip list"


def test_cgpu_scripted_replies_are_consumed_in_order(cgpu: CgpuServeStandIn) -> None:
    cgpu.script(Text("one"), Text("two"))
    client = _client(cgpu)
    texts = [client.responses.create(model="m", input="x").output_text for _ in range(3)]
    assert texts == ["one", "two", '{"ok": true}'] and cgpu.pending == 0


def test_cgpu_health_and_unknown_routes(cgpu: CgpuServeStandIn) -> None:
    r = requests.get(f"{cgpu.url}/health", timeout=5)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    for method, path in [("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("GET", "/v1/responses"),
                         ("GET", "/"), ("POST", "/health"), ("DELETE", "/v1/responses"), ("GET", "/v1/health")]:
        r = requests.request(method, cgpu.url + path, json={}, timeout=5)
        assert r.status_code == 404, (method, path)
        assert r.json() == {"error": {"code": "not_found", "message": f"No route for {method} {path}",
                                      "details": None}}
    with pytest.raises(openai.NotFoundError):
        _client(cgpu).models.list()
    with pytest.raises(openai.NotFoundError):
        _client(cgpu).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert cgpu.requests[0].path == "/health" and cgpu.requests[1].method == "POST"


def test_cgpu_requires_json_content_type(cgpu: CgpuServeStandIn) -> None:
    r = _post(cgpu, '{"input": "x"}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    # charset suffixes are fine
    assert _post(cgpu, {"input": "x"}, {"Content-Type": "application/json; charset=utf-8"}).status_code == 200


def test_cgpu_body_limit(cgpu: CgpuServeStandIn) -> None:
    big = {"input": "x" * (512 * 1024)}
    r = _post(cgpu, big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert _post(cgpu, {"input": "x" * (500 * 1024)}).status_code == 200


@pytest.mark.parametrize("raw, code", [("{not json", "invalid_json"), ("", "empty_body"), ("NaN", "invalid_json")])
def test_cgpu_bad_json_body(cgpu: CgpuServeStandIn, raw: str, code: str) -> None:
    r = _post(cgpu, raw)
    assert r.status_code == 400 and r.json()["error"]["code"] == code


@pytest.mark.parametrize("extra, code", [
    ({"stream": True}, "streaming_not_supported"),
    ({"stream": "yes"}, "invalid_boolean"),
    ({"include": ["reasoning.encrypted_content"]}, "include_not_supported"),
    ({"conversation": "conv_1"}, "conversation_not_supported"),
    ({"previous_response_id": "resp_1"}, "previous_response_not_supported"),
    ({"temperature": 2.5}, "invalid_temperature"),
    ({"temperature": -0.1}, "invalid_temperature"),
    ({"temperature": "hot"}, "invalid_number"),
    ({"top_p": 1.5}, "invalid_top_p"),
    ({"top_p": -1}, "invalid_top_p"),
    ({"input": None}, "invalid_input"),
    ({"input": 42}, "invalid_input"),
    ({"input": "   "}, "empty_input"),
    ({"input": [{"type": "input_image", "image_url": "x"}]}, "empty_input"),
])
def test_cgpu_rejected_requests(cgpu: CgpuServeStandIn, extra: dict[str, Any], code: str) -> None:
    r = _post(cgpu, {"model": "m", "input": "hi", **extra})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == code and error["message"] and "details" in error
    assert cgpu.pending == 0 and len(cgpu.model_requests) == 1  # recorded, no model call


def test_cgpu_missing_input_and_event_stream(cgpu: CgpuServeStandIn) -> None:
    r = _post(cgpu, {"model": "m"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_input"
    r = _post(cgpu, {"input": "x"}, {**JSON, "Accept": "text/event-stream"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "streaming_not_supported"
    with pytest.raises(openai.BadRequestError) as exc:
        _client(cgpu).responses.create(model="m", input="x", stream=True)
    assert exc.value.status_code == 400


@pytest.mark.parametrize("extra", [
    {"temperature": 0.2, "top_p": 0.9, "max_output_tokens": 800},
    {"temperature": 0, "top_p": 1},
    {"temperature": 2, "top_p": 0},
    {"response_format": {"type": "json_object"}},
    {"text": {"format": {"type": "json_schema", "name": "plan", "schema": {"type": "object"}}}},
    {"include": []},
    {"tools": [], "tool_choice": "auto", "metadata": {"job": "1"}},
])
def test_cgpu_accepted_but_ignored(cgpu: CgpuServeStandIn, extra: dict[str, Any]) -> None:
    cgpu.script(Text("not json at all"))  # no JSON mode: the text comes back as is
    r = _post(cgpu, {"model": "m", "input": "hi", **extra})
    assert r.status_code == 200 and r.json()["output_text"] == "not json at all"


def test_cgpu_accepts_sampling_params_from_the_client(cgpu: CgpuServeStandIn) -> None:
    resp = _client(cgpu).responses.create(
        model="m", input="x", temperature=0.3, top_p=0.5, max_output_tokens=100,
        text={"format": {"type": "json_object"}},
    )
    assert resp.output_text == '{"ok": true}'
    assert cgpu.model_requests[-1].json["text"] == {"format": {"type": "json_object"}}


@pytest.mark.parametrize("reply, status, code", [
    (quota_exceeded(), 502, "gemini_cli_error"),
    (cli_error("boom", "partial"), 502, "gemini_cli_error"),
    (empty_response(), 502, "empty_response"),
    (invalid_json(), 502, "invalid_json"),
    (cli_failure("model not found"), 502, "gemini_cli_failure"),
    (cli_missing(), 500, "gemini_cli_missing"),
    (Error(503, "custom", "custom failure", {"k": 1}), 503, "custom"),
])
def test_cgpu_scripted_errors(cgpu: CgpuServeStandIn, reply: Error, status: int, code: str) -> None:
    cgpu.script(reply)
    with pytest.raises(openai.APIStatusError) as exc:
        _client(cgpu).responses.create(model="m", input="x")
    assert exc.value.status_code == status
    body = _post(cgpu, {"input": "x"})  # queue now empty: default again
    assert body.status_code == 200
    cgpu.script(reply)
    r = _post(cgpu, {"input": "x"})
    assert r.status_code == status
    assert r.json() == {"error": {"code": code, "message": reply.message, "details": reply.details}}


def test_cgpu_quota_error_is_gemini_clis_pretty_printed_json(cgpu: CgpuServeStandIn) -> None:
    # gemini-cli --output-format json: JSON.stringify({session_id, error: {type, message, code}}, null, 2)
    # on stderr, which cgpu serve (runner.ts) passes on as the message of a 502 gemini_cli_error
    cgpu.script(quota_exceeded())
    error = _post(cgpu, {"input": "x"}).json()["error"]
    assert error["code"] == "gemini_cli_error" and error["details"] == ""
    assert error["message"].startswith('{\n  "session_id": ')
    assert json.loads(error["message"])["error"] == {
        "type": "TerminalQuotaError", "message": "You have exhausted your daily quota on this model.", "code": 1}


def test_cgpu_quota_error_after_retry_warnings_and_without_session_id(cgpu: CgpuServeStandIn) -> None:
    warning = "Attempt 1 failed: Quota exceeded for quota metric.\nSuggested retry after 10s.. Retrying after 10000ms..."
    cgpu.script(quota_exceeded("Resource has been exhausted (e.g. check quota).", "RetryableQuotaError",
                               warnings=[warning], session_id=None))
    message = _post(cgpu, {"input": "x"}).json()["error"]["message"]
    head, _, obj = message.partition("\n{")
    assert head.startswith("Attempt 1 failed") and json.loads("{" + obj) == {"error": {
        "type": "RetryableQuotaError", "message": "Resource has been exhausted (e.g. check quota).", "code": 1}}


def test_cgpu_auth_error_drops_the_credentials_line(cgpu: CgpuServeStandIn) -> None:
    cgpu.script(auth_error())
    error = _post(cgpu, {"input": "x"}).json()["error"]
    assert error["code"] == "gemini_cli_error" and "Loaded cached credentials" not in error["message"]
    assert json.loads(error["message"])["error"]["message"].startswith("Please set an Auth method in your ")


@pytest.mark.parametrize("stderr, stdout, message, details", [
    ("  Loaded cached credentials.\nboom\n", " partial \n", "boom", "partial"),
    ("", "", "Gemini CLI exited with code 41", ""),                 # no stderr: the exit code
    ("Loaded cached credentials.", "", "", ""),                      # only the noise line: an empty message
])
def test_cgpu_cli_error_message_follows_runner_ts(cgpu: CgpuServeStandIn, stderr: str, stdout: str,
                                                 message: str, details: str) -> None:
    cgpu.script(cli_error(stderr, stdout, exit_code=41))
    assert _post(cgpu, {"input": "x"}).json() == {"error": {"code": "gemini_cli_error", "message": message,
                                                            "details": details}}


def test_cgpu_invalid_json_details_are_trimmed_stdout(cgpu: CgpuServeStandIn) -> None:
    cgpu.script(invalid_json("  Loaded cached credentials.\n{not json  \n"))
    assert _post(cgpu, {"input": "x"}).json() == {"error": {
        "code": "invalid_json", "message": "Gemini CLI returned malformed JSON",
        "details": "Loaded cached credentials.\n{not json"}}


def test_cgpu_delay_within_timeout_is_answered(cgpu: CgpuServeStandIn) -> None:
    cgpu.script(Text("slow", delay_s=0.15))
    t0 = time.monotonic()
    assert _client(cgpu).responses.create(model="m", input="x").output_text == "slow"
    assert 0.15 <= time.monotonic() - t0 < 1


def test_cgpu_delay_past_timeout_is_empty_response(cgpu: CgpuServeStandIn) -> None:
    cgpu.script(Text("too slow", delay_s=5))
    t0 = time.monotonic()
    r = _post(cgpu, {"input": "x"})
    elapsed = time.monotonic() - t0
    assert r.status_code == 502
    assert r.json() == {"error": {"code": "empty_response", "message": "Gemini CLI produced no output",
                                  "details": None}}
    assert 0.3 <= elapsed < 1.5  # after server_timeout_s, not after the reply's delay


def test_cgpu_timeout_seen_by_the_client(cgpu: CgpuServeStandIn) -> None:
    cgpu.script(Error(502, "gemini_cli_error", "would come too late", delay_s=10))
    with pytest.raises(openai.InternalServerError) as exc:
        _client(cgpu).responses.create(model="m", input="x")
    assert exc.value.status_code == 502 and exc.value.code == "empty_response"


def test_cgpu_requests_run_concurrently(cgpu: CgpuServeStandIn) -> None:
    cgpu.script(Text("a", delay_s=0.2), Text("b", delay_s=0.2), Text("c", delay_s=0.2))
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        texts = sorted(pool.map(lambda _: _post(cgpu, {"input": "x"}).json()["output_text"], range(3)))
    assert texts == ["a", "b", "c"] and time.monotonic() - t0 < 0.55  # no queue in cgpu serve


def test_cgpu_stop_releases_waiting_requests() -> None:
    srv = CgpuServeStandIn(server_timeout_s=30).start()
    srv.script(Text("never", delay_s=20))
    result: dict[str, Any] = {}

    def call() -> None:
        try:
            result["r"] = _post(srv, {"input": "x"})
        except requests.ConnectionError as exc:
            result["e"] = exc

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    srv.stop()
    worker.join(5)
    assert not worker.is_alive() and "e" in result and time.monotonic() - t0 < 2


def test_cgpu_missing_gemini_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with CgpuServeStandIn(gemini_bin="gemini") as srv:
        assert requests.get(f"{srv.url}/health", timeout=5).status_code == 200  # starts anyway
        r = _post(srv, {"input": "x"})
        assert r.status_code == 500 and r.json()["error"]["code"] == "gemini_cli_missing"
        install_fake_cgpu(tmp_path, gemini=True)
        assert _post(srv, {"input": "x"}).status_code == 200


# ----------------------------------------------------------------------------- Ollama


def test_ollama_chat_completion_with_the_real_client(ollama: OllamaStandIn) -> None:
    ollama.script(Text('{"cuts": []}'))
    client = OpenAI(base_url=ollama.base_url, api_key="ollama", max_retries=0, _strict_response_validation=True)
    resp = client.chat.completions.create(
        model="llama3.2", messages=[{"role": "system", "content": "JSON only"}, {"role": "user", "content": "plan"}],
        response_format={"type": "json_object"}, temperature=0.2,
    )
    assert resp.choices[0].message.content == '{"cuts": []}'
    assert resp.choices[0].message.role == "assistant" and resp.choices[0].finish_reason == "stop"
    assert resp.object == "chat.completion" and resp.model == "llama3.2" and resp.id.startswith("chatcmpl-")
    assert resp.usage is not None and resp.usage.total_tokens >= 0
    req = ollama.chat_requests[-1]
    assert req.json["response_format"] == {"type": "json_object"} and req.json["messages"][1]["content"] == "plan"
    assert req.headers["authorization"] == "Bearer ollama"


def test_ollama_json_schema_request_is_recorded(ollama: OllamaStandIn) -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "plan", "schema": {"type": "object"}}}
    resp = OpenAI(base_url=ollama.base_url, api_key="ollama", max_retries=0).chat.completions.create(
        model="qwen2.5:7b", messages=[{"role": "user", "content": "x"}], response_format=schema)  # type: ignore[arg-type]
    assert resp.choices[0].message.content == '{"ok": true}'
    assert ollama.chat_requests[-1].json["response_format"] == schema


def test_ollama_model_lists(ollama: OllamaStandIn) -> None:
    tags = requests.get(f"{ollama.url}/api/tags", timeout=5).json()
    assert [m["name"] for m in tags["models"]] == ["llama3.2:latest", "qwen2.5:7b"]
    assert {"model", "modified_at", "size", "digest", "details"} <= set(tags["models"][0])
    listed = OpenAI(base_url=ollama.base_url, api_key="ollama", max_retries=0).models.list()
    assert [m.id for m in listed] == ["llama3.2:latest", "qwen2.5:7b"]
    assert requests.get(ollama.url, timeout=5).text == "Ollama is running"
    r = requests.get(f"{ollama.url}/v1/responses", timeout=5)
    assert r.status_code == 404 and r.text == "404 page not found"


def test_ollama_errors(ollama: OllamaStandIn) -> None:
    client = OpenAI(base_url=ollama.base_url, api_key="ollama", max_retries=0)
    msgs = [{"role": "user", "content": "x"}]
    with pytest.raises(openai.NotFoundError) as nf:
        client.chat.completions.create(model="mistral", messages=msgs)  # type: ignore[arg-type]
    assert nf.value.body == {"message": 'model "mistral" not found, try pulling it first',
                             "type": "not_found_error", "param": None, "code": None}
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="llama3.2", messages=msgs, stream=True)  # type: ignore[arg-type]
    r = requests.post(f"{ollama.base_url}/chat/completions", json={"model": "llama3.2", "messages": []}, timeout=5)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = requests.post(f"{ollama.base_url}/chat/completions", data="{oops", headers=JSON, timeout=5)
    assert r.status_code == 400
    ollama.script(Error(500, "overloaded", "server busy"))
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(model="llama3.2", messages=msgs)  # type: ignore[arg-type]
    assert exc.value.body == {"message": "server busy", "type": "api_error", "param": None, "code": "overloaded"}


def test_ollama_delay_is_honoured(ollama: OllamaStandIn) -> None:
    ollama.script(Text("late", delay_s=0.15))
    t0 = time.monotonic()
    resp = OpenAI(base_url=ollama.base_url, api_key="ollama", max_retries=0).chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "x"}])
    assert resp.choices[0].message.content == "late" and time.monotonic() - t0 >= 0.15
    ollama.script(Text("later", delay_s=5))  # no server-side timeout: only the client gives up
    with pytest.raises(openai.APITimeoutError):
        OpenAI(base_url=ollama.base_url, api_key="ollama", max_retries=0, timeout=0.2).chat.completions.create(
            model="llama3.2", messages=[{"role": "user", "content": "x"}])


# ----------------------------------------------------------------------------- fake cgpu executable


def _env(bin_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "FORCE_COLOR"}
    env["PATH"] = str(bin_dir)  # only the fake cgpu and (maybe) the dummy gemini
    env.update(extra)
    return env


def _start_serve(cgpu_bin: Path, args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([str(cgpu_bin), "serve", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(10)
    if not line:
        proc.kill()
        pytest.fail("fake cgpu serve printed nothing within 10 s")
    return proc, line[0]


def test_fake_cgpu_cli_surface(tmp_path: Path) -> None:
    cgpu_bin = install_fake_cgpu(tmp_path)
    assert os.access(cgpu_bin, os.X_OK) and os.access(tmp_path / "gemini", os.X_OK)
    assert subprocess.run([str(tmp_path / "gemini")]).returncode == 0

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(cgpu_bin), *args], env=_env(tmp_path), text=True, capture_output=True, timeout=10)

    help_ = run("--help")
    assert help_.returncode == 0 and "serve" in help_.stdout
    assert run("serve", "--help").returncode == 0
    version = run("--version")
    assert version.returncode == 1 and "unknown option '--version'" in version.stderr
    assert run("status").returncode == 1
    unknown = run("frobnicate")
    assert unknown.returncode == 1 and "unknown command" in unknown.stderr
    assert run().returncode == 1
    assert run("serve", "--bogus").returncode == 1


def test_fake_cgpu_serve_runs_the_contract(tmp_path: Path) -> None:
    cgpu_bin = install_fake_cgpu(tmp_path)
    port = free_port()
    env = _env(tmp_path, FAKE_CGPU_REPLY='{"plan": 1}')
    proc, line = _start_serve(cgpu_bin, ["--port", str(port), "--default-model", "gemini-2.5-flash"], env)
    try:
        assert line.strip() == f"cgpu serve listening on http://127.0.0.1:{port} (default model: gemini-2.5-flash)"
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/health", timeout=5).json() == {"status": "ok"}
        assert requests.get(f"{base}/v1/models", timeout=5).status_code == 404
        resp = OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0).responses.create(
            model="gemini-2.5-flash", instructions="JSON", input="go")
        assert resp.output_text == '{"plan": 1}'
        assert requests.post(f"{base}/v1/responses", data="x", timeout=5).status_code == 415

        # a second server on the same port fails like Node's listen()
        second = subprocess.run([str(cgpu_bin), "serve", "--port", str(port)], env=env,
                                text=True, capture_output=True, timeout=10)
        assert second.returncode == 1
        assert f"EADDRINUSE: address already in use 127.0.0.1:{port}" in second.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "shutdown complete" in out
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_fake_cgpu_refuses_a_taken_port(tmp_path: Path) -> None:
    cgpu_bin = install_fake_cgpu(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        res = subprocess.run([str(cgpu_bin), "serve", "-p", str(port)], env=_env(tmp_path, FORCE_COLOR="1"),
                             text=True, capture_output=True, timeout=10)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.strip() == f"\x1b[31mlisten EADDRINUSE: address already in use 127.0.0.1:{port}\x1b[39m"


def test_fake_cgpu_without_gemini_and_with_timeout(tmp_path: Path) -> None:
    cgpu_bin = install_fake_cgpu(tmp_path, gemini=False)
    assert not (tmp_path / "gemini").exists()
    port = free_port()
    proc, line = _start_serve(cgpu_bin, ["--port", str(port)], _env(tmp_path))
    try:
        assert "(default model: gemini-2.0-flash)" in line  # the real default
        r = requests.post(f"http://127.0.0.1:{port}/v1/responses", json={"input": "x"}, timeout=5)
        assert r.status_code == 500 and r.json()["error"]["code"] == "gemini_cli_missing"
    finally:
        proc.terminate()
        proc.communicate(timeout=10)

    install_fake_cgpu(tmp_path, gemini=True)
    port = free_port()
    proc, _ = _start_serve(cgpu_bin, [f"--port={port}", "--timeout", "300"], _env(tmp_path, FAKE_CGPU_DELAY_S="5"))
    try:
        t0 = time.monotonic()
        r = requests.post(f"http://127.0.0.1:{port}/v1/responses", json={"input": "x"}, timeout=5)
        assert r.status_code == 502 and r.json()["error"]["code"] == "empty_response"
        assert time.monotonic() - t0 < 2
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
