"""The ``llm_paraphrase`` attack against a local OpenAI-compatible server, attack parameters
from the suite, and skipped cells end to end (store, report, export, CLI summary).

The server is a real HTTP server in a thread (``http.server``): it rewrites by reversing
the word order, records every request, and can be told to fail, stall or answer nonsense.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

import wmbench_attacks.text_llm as text_llm  # registers llm_paraphrase even before its entry point exists
from wmbench import registry
from wmbench.api import Attack, SkipCell, attack
from wmbench.errors import SuiteError
from wmbench.report import skips, summarize
from wmbench.store import Store
from wmbench.suite import parse_suite
from testkit import invoke, read_cells

MARKER = "<<TEXT>>"
PROMPT = f"Say it otherwise.{MARKER}{{text}}"
TEXT = "The harbour was quiet in the early morning and the boats rocked gently."


def reverse_words(text: str) -> str:
    return " ".join(reversed(text.split()))


class _Handler(BaseHTTPRequestHandler):
    server: "FakeLLM"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        srv = self.server
        with srv.lock:
            srv.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(raw)})
            action = srv.script.pop(0) if srv.script else "ok"
        body = json.loads(raw)
        content = body["messages"][-1]["content"]
        if action == "sleep":
            time.sleep(srv.stall)
        if action in ("500", "429", "404"):
            self._send(int(action), {"error": {"message": f"scripted {action}"}}, {"Retry-After": "0"})
        elif action == "notjson":
            self._send_raw(200, b"<html>gateway says hello</html>", "text/html")
        elif action == "nochoices":
            self._send(200, {"object": "chat.completion", "choices": []})
        else:
            rewrite = reverse_words(content.split(MARKER, 1)[-1])
            finish = "length" if action == "length" else "stop"
            self._send(200, {"object": "chat.completion", "model": body.get("model"), "choices": [
                {"index": 0, "message": {"role": "assistant", "content": rewrite}, "finish_reason": finish}]})

    def _send(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_raw(code, json.dumps(payload).encode(), "application/json", headers)

    def _send_raw(self, code: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def log_message(self, *args: Any) -> None:
        pass


class FakeLLM(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.script: list[str] = []  # one action per request, then "ok"
        self.stall = 1.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    for var in (text_llm.URL_ENV, text_llm.API_KEY_ENV, text_llm.MODEL_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(text_llm, "BACKOFF_SECONDS", 0.01)
    server = FakeLLM()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def paraphrase(text: str = TEXT, strength: float = 0.7, seed: int = 5, **params: Any) -> str:
    return registry.get_attack("llm_paraphrase")(text, strength, np.random.default_rng(seed), **params)


# --- the attack against the server -----------------------------------------------------------


def test_request_carries_model_messages_temperature_seed(llm: FakeLLM) -> None:
    out = paraphrase(url=llm.url, model="tiny-1", prompt=PROMPT, api_key="s3cret", strength=0.7, seed=5)
    assert out == reverse_words(TEXT)
    [req] = llm.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer s3cret"
    body = req["body"]
    assert body["model"] == "tiny-1" and body["temperature"] == 0.7
    assert body["messages"] == [{"role": "user", "content": PROMPT.replace("{text}", TEXT)}]
    assert body["seed"] == int(np.random.default_rng(5).integers(0, 2**31 - 1))
    assert "max_tokens" not in body  # 0: the server's default


def test_same_rng_same_seed_and_defaults_from_the_environment(llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(text_llm.URL_ENV, llm.url + "/")
    monkeypatch.setenv(text_llm.API_KEY_ENV, "from-env")
    monkeypatch.setenv(text_llm.MODEL_ENV, "env-model")
    paraphrase(strength=0.0, seed=11)
    paraphrase(strength=1.0, seed=11, max_tokens=512)
    first, second = (r["body"] for r in llm.requests)
    assert first["seed"] == second["seed"]
    assert (first["temperature"], second["temperature"]) == (0.0, 1.0) and second["max_tokens"] == 512
    assert first["model"] == "env-model" and llm.requests[0]["headers"]["Authorization"] == "Bearer from-env"
    assert first["messages"][0]["content"] == text_llm.DEFAULT_PROMPT.replace("{text}", TEXT)
    assert paraphrase(url=llm.url + "/chat/completions", prompt=PROMPT) == reverse_words(TEXT)  # full URL works too


@pytest.mark.parametrize("failure", ["500", "429"])
def test_retries_after_a_server_error_then_succeeds(llm: FakeLLM, failure: str) -> None:
    llm.script = [failure, failure]
    assert paraphrase(url=llm.url, prompt=PROMPT, retries=2) == reverse_words(TEXT)
    assert len(llm.requests) == 3
    assert len({json.dumps(r["body"]) for r in llm.requests}) == 1  # the very same request each time


def test_gives_up_after_the_retries_with_the_last_reason(llm: FakeLLM) -> None:
    llm.script = ["500"] * 5
    with pytest.raises(text_llm.LLMError, match=r"no answer from .*/v1/chat/completions after 3 attempts; "
                                                r"last: HTTP 500: .*scripted 500"):
        paraphrase(url=llm.url, prompt=PROMPT, retries=2)
    assert len(llm.requests) == 3


def test_timeout_is_a_clear_error_after_the_retries(llm: FakeLLM) -> None:
    llm.script = ["sleep"] * 5
    llm.stall = 1.5
    t0 = time.monotonic()
    with pytest.raises(text_llm.LLMError, match=r"after 2 attempts; last: timed out after 0.2 s"):
        paraphrase(url=llm.url, prompt=PROMPT, timeout=0.2, retries=1)
    assert time.monotonic() - t0 < 1.4  # the client did not wait for the stalled server
    assert len(llm.requests) == 2


def test_connection_refused_is_retried_then_reported(llm: FakeLLM) -> None:
    dead = FakeLLM()
    url = dead.url
    dead.server_close()  # nothing listens on that port any more
    with pytest.raises(text_llm.LLMError, match=r"after 2 attempts; last: cannot connect"):
        paraphrase(url=url, retries=1)


@pytest.mark.parametrize(("action", "message"), [
    ("notjson", r"malformed response from .*: not JSON: '<html>gateway says hello</html>'"),
    ("nochoices", r"malformed response from .*: no choices\[0\]\.message\.content string"),
    ("404", r"answered HTTP 404: .*scripted 404"),
    ("length", r"cut at the token limit"),
])
def test_bad_answers_fail_at_once_with_a_clear_message(llm: FakeLLM, action: str, message: str) -> None:
    llm.script = [action]
    with pytest.raises(text_llm.LLMError, match=message):
        paraphrase(url=llm.url, prompt=PROMPT, retries=3)
    assert len(llm.requests) == 1  # not retried: asking again would not help


def test_without_an_endpoint_the_cell_is_skipped(llm: FakeLLM) -> None:
    with pytest.raises(SkipCell, match="no LLM endpoint: set url in the suite or WMBENCH_LLM_URL"):
        paraphrase()
    assert llm.requests == []


@pytest.mark.parametrize(("params", "message"), [
    ({"url": "ftp://host/v1"}, "http"), ({"prompt": "no placeholder"}, r"\{text\}"), ({"strength": 3.0}, "temperature"),
])
def test_bad_settings_are_errors(llm: FakeLLM, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paraphrase(**{"url": llm.url, **params})
    assert llm.requests == []


# --- attack parameters: declaration, suite, call ----------------------------------------------

LLM_SUITE = """
[suite]
name = "llm"
seed = 4
[samples]
texts = ["builtin:texts"]
[[methods]]
name = "lexical"
key = "k1"
max_samples = 2
"""


def _parse(text: str, base: Path) -> Any:
    return parse_suite(text, "s.toml", base)


def _error(text: str, base: Path) -> str:
    with pytest.raises(SuiteError) as info:
        _parse(text, base)
    message = str(info.value)
    assert "\n" not in message and message.startswith("s.toml: "), message
    return message


def test_suite_parameters_are_type_checked_and_stored(tmp_path: Path) -> None:
    suite = _parse(LLM_SUITE + '[[attacks]]\nname = "llm_paraphrase"\nurl = "http://h:1/v1"\ntimeout = 5\n'
                   'retries = 0\nstrengths = [0.5]\n', tmp_path)
    [cfg] = suite.attacks
    assert cfg.params == (("retries", 0), ("timeout", 5.0), ("url", "http://h:1/v1"))
    assert isinstance(dict(cfg.params)["timeout"], float)
    hash(cfg)  # a config stays hashable
    assert cfg.steps[0].params == cfg.params and cfg.strengths == (0.5,)


@pytest.mark.parametrize(("table", "needles"), [
    ('temprature = 1.0', ["attacks[0]", "unknown field 'temprature'", "valid:", "url", "timeout"]),
    ('timeout = "fast"', ["attacks[0].timeout: expected a number", "'fast'"]),
    ('retries = 1.5', ["attacks[0].retries: expected an integer"]),
    ('retries = true', ["attacks[0].retries: expected an integer"]),
    ('url = ["http://h/v1"]', ["attacks[0].url: expected a string, number or boolean"]),
    ('prompt = 3', ["attacks[0].prompt: expected a string"]),
    ('label = 3', ["attacks[0].label: expected a string"]),
])
def test_suite_parameter_errors_name_the_field(tmp_path: Path, table: str, needles: list[str]) -> None:
    message = _error(LLM_SUITE + f'[[attacks]]\nname = "llm_paraphrase"\n{table}\n', tmp_path)
    for needle in needles:
        assert needle in message, (needle, message)


def test_attacks_without_parameters_still_refuse_extra_keys(tmp_path: Path) -> None:
    message = _error(LLM_SUITE + '[[attacks]]\nname = "word_delete"\nurl = "http://h/v1"\n', tmp_path)
    assert "attacks[0]: unknown field 'url'" in message


def test_chain_steps_take_their_own_parameters_and_labels_separate_rows(tmp_path: Path) -> None:
    suite = _parse(LLM_SUITE + """
[[attacks]]
name = "llm_then_delete"
chain = [{ attack = "llm_paraphrase", url = "http://h/v1" }, { attack = "word_delete", strength = 0.1 }]
strengths = [0.0, 1.0]
[[attacks]]
name = "llm_paraphrase"
model = "a"
[[attacks]]
name = "llm_paraphrase"
label = "llm_b"
model = "b"
""", tmp_path)
    chain, a, b = suite.attacks
    assert chain.steps[0].params == (("url", "http://h/v1"),) and chain.steps[1].params == () and chain.params == ()
    assert (a.label, a.params, b.label, b.params) == ("llm_paraphrase", (("model", "a"),), "llm_b", (("model", "b"),))
    assert b.steps[0].attack == "llm_paraphrase"
    message = _error(LLM_SUITE + """
[[attacks]]
name = "llm_then_delete"
chain = [{ attack = "llm_paraphrase", urll = "x" }, { attack = "word_delete", strength = 0.1 }]
""", tmp_path)
    assert "attacks[0].chain[0]: unknown field 'urll'" in message
    message = _error(LLM_SUITE + '[[attacks]]\nname = "llm_paraphrase"\n[[attacks]]\nname = "llm_paraphrase"\n',
                     tmp_path)
    assert "appears twice" in message and "label" in message


def test_function_and_class_attacks_receive_declared_parameters() -> None:
    seen: list[dict[str, Any]] = []

    @attack("params_fn_test", modality="text", strengths=[1], parameters={"word": "x", "times": 1})
    def repeat(text: str, strength: Any, rng: Any, *, word: str, times: int) -> str:
        seen.append({"word": word, "times": times})
        return text + (" " + word) * times

    class Suffix(Attack):
        name = "params_class_test"
        modality = "text"
        strengths = (1,)
        parameters = {"suffix": "!", "ratio": 0.5, "flags": ["a"]}

        def apply(self, text: str, strength: Any, rng: Any, *, suffix: str, ratio: float, flags: Any) -> str:
            return f"{text}{suffix}{ratio}{list(flags)}"

    rng = np.random.default_rng(0)
    fn = registry.get_attack("params_fn_test")
    assert fn.parameters == {"word": "x", "times": 1}
    assert fn("a", 1, rng) == "a x" and fn("a", 1, rng, times=2, word="y") == "a y y"
    assert seen == [{"word": "x", "times": 1}, {"word": "y", "times": 2}]
    assert registry.get_attack("params_class_test")("a", 1, rng, ratio=2.0) == "a!2.0['a']"
    with pytest.raises(TypeError, match="no parameter 'colour'"):
        fn("a", 1, rng, colour="red")
    assert registry.get_attack("word_delete").parameters == {}  # built-ins are unchanged


@pytest.mark.parametrize(("parameters", "message"), [
    ({"strengths": 1}, "reserved"), ({"label": "x"}, "reserved"), ({"rng": 1}, "reserved"),
    ({"not-an-id": 1}, "identifier"),
    ({"table": {"a": 1}}, "default"), ("url", "dict"),
])
def test_bad_parameter_declarations_are_refused(parameters: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        attack("bad_params_test", modality="text", strengths=[1], parameters=parameters)


# --- end to end: a tiny suite run ---------------------------------------------------------------


def _run_suite(tmp_path: Path, attack_table: str) -> tuple[Path, str]:
    suite = tmp_path / "suite.toml"
    suite.write_text(LLM_SUITE + attack_table, encoding="utf-8")
    out = tmp_path / "run"
    code, stdout, stderr = invoke("run", suite, "--out", out, "--workers", "1", "--no-progress")
    assert code == 0, stderr
    return out, stdout


def test_without_an_endpoint_a_run_records_skipped_cells(tmp_path: Path, llm: FakeLLM,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out, stdout = _run_suite(tmp_path, '[[attacks]]\nname = "llm_paraphrase"\nstrengths = [0.0, 0.7]\n')
    cells = list(read_cells(out).values())
    llm_cells = [c for c in cells if c["attack"] == "llm_paraphrase"]
    assert len(llm_cells) == 2 * 2 * 2  # 2 texts x 2 strengths x (marked, unmarked)
    assert all(c["skipped"] == text_llm.NO_ENDPOINT and c["error"] is None and c["p_value"] is None
               for c in llm_cells)
    assert all(c["skipped"] is None and c["p_value"] is not None for c in cells if c["attack"] == "none")
    assert llm.requests == []
    assert "0 failed, 8 skipped" in stdout and f"skipped: {text_llm.NO_ENDPOINT} (8 cells)" in stdout

    with Store(out, create=False) as store:
        records = list(store.records())
    rows = [r for r in summarize(records, 0.01) if r.attack == "llm_paraphrase"]
    assert [(r.tpr.n, r.fpr.n, r.errors, r.skipped) for r in rows] == [(0, 0, 0, 4), (0, 0, 0, 4)]
    [group] = skips(records)
    assert group.message == text_llm.NO_ENDPOINT and len(group.cells) == 8
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="skipped"' in html and text_llm.NO_ENDPOINT in html and "<b>8</b> skipped" in html

    code, jsonl, err = invoke("export", out, "--format", "jsonl")
    assert code == 0, err
    exported = [json.loads(line) for line in jsonl.splitlines()]
    assert sum(row["skipped"] == text_llm.NO_ENDPOINT for row in exported) == 8
    code, csv_text, err = invoke("export", out, "--format", "csv")
    assert code == 0 and csv_text.splitlines()[0].endswith(",error,skipped"), err

    # Once an endpoint is configured, --retry-failed runs the skipped cells again.
    monkeypatch.setenv(text_llm.URL_ENV, llm.url)
    code, stdout, stderr = invoke("run", tmp_path / "suite.toml", "--out", out, "--workers", "1", "--no-progress",
                                  "--resume", "--retry-failed")
    assert code == 0, stderr
    assert stdout.startswith("8 cells run,") and "skipped" not in stdout.splitlines()[0]
    llm_cells = [c for c in read_cells(out).values() if c["attack"] == "llm_paraphrase"]
    assert len(llm.requests) == 8 and all(c["skipped"] is None and c["p_value"] is not None for c in llm_cells)


def test_with_the_server_url_a_run_has_real_rows(tmp_path: Path, llm: FakeLLM) -> None:
    out, stdout = _run_suite(tmp_path, f'[[attacks]]\nname = "llm_paraphrase"\nstrengths = [0.0, 0.7]\n'
                                       f'url = "{llm.url}"\nmodel = "fake"\nprompt = "{PROMPT}"\n')
    llm_cells = [c for c in read_cells(out).values() if c["attack"] == "llm_paraphrase"]
    assert len(llm_cells) == 8 and len(llm.requests) == 8
    assert all(c["skipped"] is None and c["error"] is None and c["p_value"] is not None for c in llm_cells)
    assert "skipped" not in stdout.splitlines()[0]
    bodies = [r["body"] for r in llm.requests]
    assert {b["model"] for b in bodies} == {"fake"} and {b["temperature"] for b in bodies} == {0.0, 0.7}
    # marked item and unmarked twin share the attack's draws: requests come in pairs with one seed
    assert len({b["seed"] for b in bodies}) == 4
