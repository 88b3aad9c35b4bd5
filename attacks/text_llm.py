"""LLM paraphrase: the whole text rewritten by a language model behind an OpenAI-compatible API.

This is the attack LeCun's remark is about: a frequency-skew mark lives in the
choice of words, and a model asked to say the same thing in other words draws them
afresh. ``llm_paraphrase`` sends the text (inside ``prompt``) to
``{url}/chat/completions`` of any OpenAI-compatible server (vLLM, llama.cpp's
``llama-server``, Ollama, LM Studio, a hosted API) and returns the reply.

Strength is the sampling temperature, weak -> strong ``(0.0, 0.7, 1.0)``: the whole
text is paraphrased at every strength, and a hotter sample strays further from the
source wording (and from its meaning; the similarity column shows how far). It is
ordered by expectation, not guaranteed for every text. The request carries a
``seed`` drawn from the cell's ``rng``, the same for the marked item and its unmarked
twin, so a server that honours ``seed`` (vLLM, llama.cpp, OpenAI's best effort)
repeats its answers; reruns are as deterministic as the server is.

Parameters (set in the suite's ``[[attacks]]`` table):

* ``url``: the API's base URL, e.g. ``http://127.0.0.1:8000/v1`` (a full
  ``.../chat/completions`` URL works too). Unset: ``$WMBENCH_LLM_URL``; neither:
  every cell is *skipped* with the reason, so a suite with this attack still runs
  on a machine without a model server.
* ``model``: the model name sent; unset: ``$WMBENCH_LLM_MODEL``, else ``"default"``
  (single-model servers such as llama-server accept any name; vLLM wants the served
  name).
* ``prompt``: the instruction, with ``{text}`` where the text goes.
* ``api_key``: sent as ``Authorization: Bearer``; unset: ``$WMBENCH_LLM_API_KEY``.
  Prefer the variable: the suite file is stored with the run and shown in its report.
* ``timeout``: seconds per attempt; ``retries``: further attempts after a
  connection error, a timeout, HTTP 408, 429 or 5xx, with exponential back-off
  (1, 2, 4, ... s, at most 30 s, longer if the server sends ``Retry-After``).
* ``max_tokens``: the reply's token limit (0: the server's default). A reply cut at
  the limit is an error, not a paraphrase: it would mix truncation into the attack.

Any other HTTP error, a reply that is not a chat completion, or an empty one fails
the cell with a one-line reason; the run goes on.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import numpy as np

from wmbench.api import SkipCell, attack

URL_ENV = "WMBENCH_LLM_URL"
MODEL_ENV = "WMBENCH_LLM_MODEL"
API_KEY_ENV = "WMBENCH_LLM_API_KEY"
DEFAULT_MODEL = "default"
DEFAULT_PROMPT = (
    "Paraphrase the following text. Keep its meaning, its facts and about its length, but change the "
    "wording and the sentence structure. Reply with the paraphrase only, without any introduction.\n\n{text}"
)
BACKOFF_SECONDS = 1.0  # first wait before a retry; doubles each time
MAX_BACKOFF_SECONDS = 30.0
NO_ENDPOINT = f"no LLM endpoint: set url in the suite or {URL_ENV}"
_SNIPPET = 200  # characters of a bad reply quoted in an error
_THINK = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)  # reasoning models' preamble


class LLMError(RuntimeError):
    """The endpoint could not give a paraphrase: the cell fails with this message."""


@attack("llm_paraphrase", modality="text", strengths=(0.0, 0.7, 1.0), unit="temperature",
        tags={"family": "paraphrase", "replayable": False}, parameters={
    "url": None, "model": None, "prompt": DEFAULT_PROMPT, "api_key": None,
    "timeout": 60.0, "retries": 3, "max_tokens": 0,
})
def llm_paraphrase(text: str, strength: float, rng: np.random.Generator, *, url: Any, model: Any, prompt: str,
                   api_key: Any, timeout: float, retries: int, max_tokens: int) -> str:
    """Paraphrase by an LLM behind an OpenAI-compatible API; strength = sampling temperature."""
    endpoint = _endpoint(url if url is not None else os.environ.get(URL_ENV, "").strip())
    temperature = float(strength)
    if not 0.0 <= temperature <= 2.0:
        raise ValueError(f"llm_paraphrase: strength is the temperature, between 0 and 2, not {strength!r}")
    if "{text}" not in prompt:
        raise ValueError("llm_paraphrase: prompt must contain {text}, where the text goes")
    if timeout <= 0 or retries < 0 or max_tokens < 0:
        raise ValueError("llm_paraphrase: timeout must be positive, retries and max_tokens not negative")
    seed = int(rng.integers(0, 2**31 - 1))  # drawn even for a blank text: the stream stays aligned
    if not text.strip():
        return text
    body: dict[str, Any] = {
        "model": str(model if model is not None else os.environ.get(MODEL_ENV, "").strip() or DEFAULT_MODEL),
        "messages": [{"role": "user", "content": prompt.replace("{text}", text)}],
        "temperature": temperature,
        "seed": seed,
        "n": 1,
        "stream": False,
    }
    if max_tokens:
        body["max_tokens"] = int(max_tokens)
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "").strip()
    reply = post_json(endpoint, body, api_key=str(key) if key else None, timeout=float(timeout), retries=int(retries))
    return _paraphrase(reply, endpoint)


def _endpoint(url: Any) -> str:
    if not url:
        raise SkipCell(NO_ENDPOINT)
    url = str(url).strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"llm_paraphrase: url must be an http(s) base URL such as http://127.0.0.1:8000/v1, "
                         f"not {url!r}")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def post_json(endpoint: str, body: dict[str, Any], *, api_key: str | None, timeout: float, retries: int) -> Any:
    """POST ``body`` as JSON and return the decoded answer, retrying what may pass.

    Retried (``retries`` more attempts, exponential back-off): connection errors,
    timeouts, HTTP 408, 429 and 5xx. Anything else raises :class:`LLMError` at once.
    """
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    data = json.dumps(body).encode("utf-8")
    attempts = retries + 1
    last = ""
    for attempt in range(attempts):
        wait = min(MAX_BACKOFF_SECONDS, BACKOFF_SECONDS * 2**attempt)
        try:
            request = urllib.request.Request(endpoint, data=data, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
            break
        except urllib.error.HTTPError as exc:
            detail = _snippet(_read_quietly(exc))
            if exc.code not in (408, 429) and exc.code < 500:
                raise LLMError(f"llm_paraphrase: {endpoint} answered HTTP {exc.code}: {detail}") from None
            last = f"HTTP {exc.code}: {detail}"
            wait = max(wait, min(MAX_BACKOFF_SECONDS, _retry_after(exc.headers.get("Retry-After"))))
        except (TimeoutError, socket.timeout):
            last = f"timed out after {timeout:g} s"
        except urllib.error.URLError as exc:
            is_timeout = isinstance(exc.reason, (TimeoutError, socket.timeout))
            last = f"timed out after {timeout:g} s" if is_timeout else f"cannot connect: {exc.reason}"
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            last = f"connection failed: {type(exc).__name__}: {exc}"
        if attempt + 1 < attempts:
            time.sleep(wait)
    else:
        raise LLMError(f"llm_paraphrase: no answer from {endpoint} after {attempts} attempt"
                       f"{'' if attempts == 1 else 's'}; last: {last}")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise LLMError(f"llm_paraphrase: malformed response from {endpoint}: not JSON: {_snippet(raw)}") from None


def _paraphrase(reply: Any, endpoint: str) -> str:
    """The text of ``choices[0].message.content``; a cut, empty or odd reply is an error."""
    try:
        choice = reply["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        content, choice = None, None
    if not isinstance(content, str):
        raise LLMError(f"llm_paraphrase: malformed response from {endpoint}: no choices[0].message.content "
                       f"string in {_snippet(json.dumps(reply))}")
    if choice.get("finish_reason") == "length":
        raise LLMError("llm_paraphrase: the reply was cut at the token limit (finish_reason = length); "
                       "raise max_tokens or the server's limit")
    text = _THINK.sub("", content).strip()
    if not text:
        raise LLMError(f"llm_paraphrase: {endpoint} returned an empty paraphrase")
    return text


def _read_quietly(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read()
    except (OSError, http.client.HTTPException):
        return b""


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:  # an HTTP date: not worth parsing, the back-off applies
        return 0.0


def _snippet(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = " ".join(text.split())
    return repr(text if len(text) <= _SNIPPET else text[:_SNIPPET] + "...")


__all__ = ["LLMError", "llm_paraphrase"]
