"""A fake OpenAI-compatible LLM server on loopback for fault injection (parsing and control flow only: the real vLLM
tests stay). The project's real :class:`~mad_guardrails.agents.backends.openai_http.OpenAIBackend` talks to it over
HTTP exactly as it talks to vLLM.

Each ``POST /v1/chat/completions`` is answered by the server's current ``script(call) -> Reply``; tests swap the
script per test. A :class:`Call` knows who is asking (``coordinator`` or the debater's role, read from the prompt), the
evidence shown (``[doc_id] text`` blocks) and its number, so scripts can fail some roles only or the first N calls.

    >>> srv = FaultServer(healthy())                                                     # doctest: +SKIP
    >>> srv.script = status(500)          # every call answers HTTP 500 from now on       # doctest: +SKIP

Replies: :func:`ok` (an answer text), :func:`status` (an HTTP error), :func:`hang` (answer only after the client's
deadline), :func:`drop` (close the connection without an answer). :func:`refused_url` is a loopback URL where nothing
listens (connection refused); :meth:`FaultServer.down` / :meth:`FaultServer.up` take the server away and bring it
back on the same port (an outage, then recovery). The built-in scripts (``healthy``, ``prose``, ``truncated_json`` ...) each return a
script; :data:`FAULTS` names the faults the suite injects (counted by ``bench/fault_counts.py``).
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_BLOCK = re.compile(r"^\[([^\]\s]+)\] (.+)$", re.M)
_ROLE = re.compile(r"Your role: (\w+)")


@dataclass
class Call:
    """One chat request as the script sees it."""

    n: int  # 0-based number of the call (all roles)
    role: str  # "coordinator" or the debater's role name
    body: dict
    evidence: dict[str, str] = field(default_factory=dict)  # unit id -> text shown

    def first_words(self, k: int = 8, which: int = 0) -> tuple[str, str]:
        """``(doc_id, the first k words of that evidence block)`` — a verbatim quote."""
        items = list(self.evidence.items())
        if not items:
            return "none:none", "nothing"
        uid, text = items[min(which, len(items) - 1)]
        text = re.sub(r"^\s*(\(\w{1,5}\)|\d{1,3}\.)\s*", "", text)
        return uid, " ".join(text.split()[:k]).rstrip(",;:")


@dataclass
class Reply:
    status: int = 200
    text: str = ""
    delay_s: float = 0.0
    drop: bool = False


Script = Callable[[Call], Reply]


def ok(text: str) -> Reply:
    return Reply(text=text)


def status(code: int) -> Script:
    return lambda call: Reply(status=code)


def hang(seconds: float = 30.0) -> Script:
    """Answer (healthily) only after ``seconds`` — past any deadline the tests configure."""
    good = healthy()
    return lambda call: Reply(text=good(call).text, delay_s=seconds)


def drop() -> Script:
    return lambda call: Reply(drop=True)


def turn_json(stance: str, doc_id: str, quote: str, claim: str = "The evidence governs this output.") -> str:
    return json.dumps({"stance": stance, "claims": [{"text": claim, "quotes": [{"doc_id": doc_id, "text": quote}]}],
                       "confidence": 0.9})


def coordinator_json(decision: str, doc_id: str, quote: str, *, rule_id: str | None = None) -> str:
    viol = [{"rule_id": rule_id, "severity": "high", "explanation": "contradicts the quoted clause",
             "quotes": [{"doc_id": doc_id, "text": quote}]}] if rule_id and decision != "allow" else []
    return json.dumps({"evidence": [{"doc_id": doc_id, "text": quote}], "decision": decision, "violations": viol,
                       "rationale": f"The quoted clause supports {decision}.", "confidence": 0.95})


def healthy(stance: str = "compliant", decision: str = "allow") -> Script:
    """Well-formed answers quoting the first words of the first evidence block verbatim."""
    def script(call: Call) -> Reply:
        uid, quote = call.first_words()
        if call.role == "coordinator":
            return ok(coordinator_json(decision, uid, quote))
        return ok(turn_json(stance, uid, quote))
    return script


def roles(default: Script, **by_role: Script) -> Script:
    """``default`` except for the named roles (``coordinator=status(500)``, ``prosecutor=...``)."""
    return lambda call: by_role.get(call.role, default)(call)


def first_n(n: int, bad: Script, good: Script) -> Script:
    """The first ``n`` calls (all roles, counted by the server) answered by ``bad``, the rest by ``good``."""
    return lambda call: bad(call) if call.n < n else good(call)


def coordinator_says(make: Callable[[Call], str], debaters: Script | None = None) -> Script:
    """Healthy (compliant) debaters unless given; the coordinator answers ``make(call)``."""
    return roles(debaters or healthy(), coordinator=lambda call: ok(make(call)))


# -- the faults (each a script; what the coordinator or every role answers) ------------------------------------------
def prose() -> Script:
    return lambda call: ok("I have reviewed the output carefully and I think it is basically fine, no problems.")


def truncated_json() -> Script:
    def script(call: Call) -> Reply:
        uid, quote = call.first_words()
        full = coordinator_json("allow", uid, quote) if call.role == "coordinator" else turn_json("compliant", uid, quote)
        return ok(full[: len(full) // 3])
    return script


def fabricated_quote() -> Script:
    """Everyone 'quotes' a sentence that is in no clause, and the coordinator allows on it."""
    fake = "Providers may place any AI system on the market without restriction"
    def script(call: Call) -> Reply:
        uid, _ = call.first_words()
        return ok(coordinator_json("allow", uid, fake) if call.role == "coordinator" else turn_json("compliant", uid, fake))
    return script


def invented_id() -> Script:
    """A real sentence cited under an id that was never shown (and does not exist)."""
    def script(call: Call) -> Reply:
        _, quote = call.first_words()
        uid = "eu-ai-act:art_999.9"
        return ok(coordinator_json("allow", uid, quote) if call.role == "coordinator" else turn_json("compliant", uid, quote))
    return script


def irrelevant_quote(sentence: tuple[str, str]) -> Script:
    """A real, verbatim sentence of the corpus that says nothing about the output, quoted for an allow."""
    uid, quote = sentence
    return coordinator_says(lambda call: coordinator_json("allow", uid, quote),
                            debaters=lambda call: ok(turn_json("compliant", uid, quote)))


#: the faults the suite injects, by name (tests parametrize over these; bench/fault_counts.py counts them)
FAULTS = ("refused", "http_500", "http_503_then_ok", "hang", "drop", "prose", "truncated_json", "fabricated_quote",
          "invented_id", "irrelevant_quote", "coordinator_500", "debaters_500", "prosecutor_500", "first_n_then_ok")


# -- the server --------------------------------------------------------------------------------------------------------
def record(kind: str, name: str, **data) -> None:
    """Append ``{"kind", "name", **data}`` to ``$FAULT_COUNTS_FILE`` when set (``bench/fault_counts.py`` sums it)."""
    import os

    path = os.environ.get("FAULT_COUNTS_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"kind": kind, "name": name, **data}) + "\n")


def _completion(text: str, model: str) -> dict:
    return {"id": "cmpl-fault", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


class FaultServer:
    """The fake server (a daemon thread); ``script`` may be swapped at any time; ``calls`` counts calls by role."""

    def __init__(self, script: Script | None = None, *, coordinator_model: str = "coordinator"):
        self.script: Script = script or healthy()
        self.coordinator_model = coordinator_model
        self.calls: Counter[str] = Counter()
        self.n = 0
        self._lock = threading.Lock()
        self._release = threading.Event()  # set at close: hanging handlers return at once
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: down() refuses the very next call

            def log_message(self, *a):  # quiet
                pass

            def _send(self, code: int, payload: dict) -> None:
                from tests.fixtures.llm_server import send_json

                send_json(self, code, payload)

            def do_GET(self):  # noqa: N802
                self._send(200, {"object": "list", "data": [{"id": "smollm2", "object": "model"},
                                                            {"id": outer.coordinator_model, "object": "model"}]})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                call = outer._call(body)
                reply = outer.script(call)
                if reply.delay_s and outer._release.wait(reply.delay_s):
                    return
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if reply.status != 200:
                    self._send(reply.status, {"error": {"message": f"injected HTTP {reply.status}",
                                                        "type": "server_error", "code": reply.status}})
                    return
                self._send(200, _completion(reply.text, body.get("model", "m")))

        self._handler = Handler
        self.port = 0
        self.httpd: ThreadingHTTPServer | None = None
        self.up()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def up(self) -> None:
        """Listen (again, on the same port after :meth:`down`)."""
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def down(self) -> None:
        """Stop listening: every connection is refused until :meth:`up`."""
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def _call(self, body: dict) -> Call:
        text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        if body.get("model") == self.coordinator_model:
            role = "coordinator"
        else:
            m = _ROLE.search(text)
            role = m.group(1) if m else "agent"
        ev_part = text.split("<evidence>", 1)[1].split("</evidence>", 1)[0] if "<evidence>" in text else ""
        evidence = {m.group(1): m.group(2) for m in _BLOCK.finditer(ev_part)}
        with self._lock:
            n = self.n
            self.n += 1
            self.calls[role] += 1
        return Call(n=n, role=role, body=body, evidence=evidence)

    def reset(self, script: Script) -> None:
        with self._lock:
            self.script, self.n = script, 0
            self.calls.clear()

    def close(self) -> None:
        self._release.set()
        self.down()


def refused_url() -> str:
    """A loopback base URL where nothing listens: every connection is refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"


# -- pytest fixtures (import them into a test module: ``from tests.fault_server import fault_guardrail, ...``) ---------
try:
    import pytest
except ImportError:  # the module also serves bench scripts
    pytest = None

#: what the fault profile changes in the offline profile: short deadlines, no retries (each fault hits once)
FAST = {"llm": {"timeout_s": 1.0, "retries": 0}, "timeout_s": 60.0}

if pytest is not None:
    @pytest.fixture(scope="module")
    def fault_server():
        srv = FaultServer(healthy())
        yield srv
        srv.close()

    @pytest.fixture(scope="module")
    def fault_profile(fault_server, small_index_dir, offline_embedder_config, tmp_path_factory):
        """The offline profile as a YAML file, pointed at the fault server and the tests' small real index."""
        import yaml

        from tests.fixtures.llm_server import offline_profile_on

        data = offline_profile_on(fault_server, index_dir=small_index_dir,
                                  embedder=offline_embedder_config.model_dump(mode="json"))
        data["llm"].update(FAST["llm"])
        data["timeout_s"] = FAST["timeout_s"]
        if data.get("verifier", {}).get("harm_model"):  # a separate model with its own tests; not what is faulted here
            data["verifier"]["harm_model"] = None
        path = tmp_path_factory.mktemp("fault-profile") / "fault.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    @pytest.fixture(scope="module")
    def fault_guardrail(fault_profile):
        from mad_guardrails.guardrails.guardrail import Guardrail

        with Guardrail.from_config(str(fault_profile)) as g:
            yield g
