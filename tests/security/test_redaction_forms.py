"""Secrets never reach an output in any form (SECURITY.md T4, T23.3).

A careless service echoes the key it was sent, in the forms an attacker (or an accident) would
use: escaped into JSON, with the newline it was read with, base64, hex, URL-encoded, split in two.
A model repeats it into its arguments, its plan and its answer, and the user pasted it into the
task. Every output is searched for every form: `run --json`, the live view, trace JSONL, the HTML
trace, `tools call`, and the responses of `toolkit serve mcp`.

The forms are computed here independently of toolkit/runtime/secrets.py, so that the test does
not share the code it checks.
"""

from __future__ import annotations

import base64
import html
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse

import pytest
import yaml

from tests.fixtures.plugin_server import send_json
from tests.security.cli_subprocess import REPO, no_traceback, toolkit_cli
from toolkit import Agent, ToolRegistry
from toolkit.models.scripted import ScriptedBackend
from toolkit.runtime.trace import write_trace
from toolkit.trace_view import write_html

QUOTE_KEY = 'sk-"quo\\ted-7Yv2Lq9Xc4Rb'  # a `"` and a `\`: JSON output escapes both
FILE_KEY = "sk-file-9Hd3Kq0Zt6WmPa2"  # read from a secret file with its newline (see below)
PLAIN_KEY = "sk-live-4Tg8Ne1Bq7Vz0Ks5"


def forms(key: str) -> dict[str, str]:
    """What `key` looks like in each rendering an output may give it."""
    raw = key.encode()
    found = {
        "raw": key,
        "json": json.dumps(key)[1:-1],
        "json-in-json": json.dumps(json.dumps(key)[1:-1])[1:-1],
        "html": html.escape(key),
        "url": quote(key, safe=""),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "first half": key[: len(key) // 2],
        "second half": key[len(key) // 2 :],
    }
    for shift in range(3):  # base64 of the key behind 0, 1 or 2 other bytes, as in `user:KEY`
        encoded = base64.b64encode(b"u:x"[: 3 - shift] + raw).decode()
        found[f"base64+{shift}"] = encoded[4:-4]  # the part that encodes only the key's bytes
    return {name: form for name, form in found.items() if len(form) >= 8}


def leaks(text: str, key: str) -> list[str]:
    return [name for name, form in forms(key).items() if form in text]


class Echo(BaseHTTPRequestHandler):
    """Echoes the key of the Authorization header, and the `note` argument, in every form."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        note = parse_qs(urlparse(self.path).query).get("note", [""])[0]
        send_json(
            self,
            {
                "you_sent": key,
                "note": note,
                "basic": base64.b64encode(f"user:{key}".encode()).decode(),
                "hex": key.encode().hex(),
                "url": quote(key, safe=""),
                "split": f"part one: {key[: len(key) // 2]} ... part two: {key[len(key) // 2 :]}",
            },
        )


@pytest.fixture(scope="module")
def echo_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def leaky_manifest(echo_url: str, variable: str = "LEAKY_KEY", declared: bool = True) -> dict:
    """A tool that sends $variable as a Bearer token; `declared`: also listed in its auth.env."""
    return {
        "name": "leaky",
        "description": "A careless service.",
        "binding": {"type": "http", "base_url": echo_url, "headers": {"Authorization": f"Bearer ${{{variable}}}"}},
        "auth": {"env": [variable] if declared else []},
        "actions": [
            {
                "name": "echo",
                "description": "Echo.",
                "route": {"path": "/echo"},
                "input_schema": {"type": "object", "properties": {"note": {"type": "string"}}},
                "annotations": {"read_only": True},
            }
        ],
    }


@pytest.fixture
def leaky_tools(tmp_path, echo_url) -> Path:
    folder = tmp_path / "tools"
    folder.mkdir()
    (folder / "leaky.yaml").write_text(yaml.safe_dump(leaky_manifest(echo_url)))
    return folder


def script_repeating(key: str) -> list[dict]:
    """A model that passes the key as an argument, then repeats it in its answer."""
    return [
        {"tool_calls": [{"name": "leaky.echo", "arguments": {"note": f"my key is {key}"}}]},
        {"text": f"The service has your key: {key}"},
    ]


def test_an_escaped_key_leaks_from_no_output_of_run(tmp_path, leaky_tools):
    """The red team's case: a key with `"` and `\\` is escaped in JSON output, so the exact
    string never appears and was never redacted. Task, call arguments, steps, answer, trace
    file, HTML trace and the live view are all searched."""
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump(script_repeating(QUOTE_KEY)))
    env = {"LEAKY_KEY": QUOTE_KEY}
    trace = tmp_path / "trace.jsonl"
    task = f"Check the service with my key {QUOTE_KEY}"
    common = ["--model", f"scripted:{script}", "--tools-path", str(leaky_tools)]
    as_json = toolkit_cli("run", task, *common, "--json", "--trace", str(trace), env=env)
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    assert "[REDACTED:LEAKY_KEY]" in result["answer"] and "[REDACTED:LEAKY_KEY]" in result["task"]
    assert leaks(as_json.stdout, QUOTE_KEY) == []
    assert leaks(trace.read_text(), QUOTE_KEY) == []
    page = tmp_path / "trace.html"
    assert toolkit_cli("trace", "html", str(trace), "-o", str(page), env=env).returncode == 0
    assert leaks(page.read_text(), QUOTE_KEY) == []

    live = toolkit_cli("run", task, *common, env=env)  # the live view: every step on stderr
    assert live.returncode == 0 and "leaky.echo(" in live.stderr
    assert leaks(live.stdout + live.stderr, QUOTE_KEY) == []


def test_a_key_read_with_its_newline_leaks_from_no_error(tmp_path, leaky_tools):
    """The red team's case: the key ends in a newline, httpx refuses it as a header value and its
    error prints the value back, escaped (`...\\n'`), in `tools call` and in `run`'s observation."""
    env = {"LEAKY_KEY": FILE_KEY + "\n"}
    call = toolkit_cli("tools", "call", "leaky.echo", "{}", "--tools-path", str(leaky_tools), env=env)
    assert call.returncode == 1 and "Illegal header value" in call.stderr
    assert "[REDACTED:LEAKY_KEY]" in call.stderr
    assert leaks(call.stdout + call.stderr, FILE_KEY) == []
    no_traceback(call)
    as_json = toolkit_cli("tools", "call", "leaky.echo", "{}", "--json", "--tools-path", str(leaky_tools), env=env)
    assert leaks(as_json.stdout + as_json.stderr, FILE_KEY) == []


def test_encoded_and_split_forms_leak_from_no_field_of_a_result(tmp_path, leaky_tools, monkeypatch):
    """Variants: the service returns the key base64'd inside `user:KEY`, hex, URL-encoded and
    split in two; the task, the model's arguments and its answer carry it too (Python API)."""
    monkeypatch.setenv("LEAKY_KEY", PLAIN_KEY)
    registry = ToolRegistry()
    registry.load_path(leaky_tools)
    result = Agent(model=ScriptedBackend(script_repeating(PLAIN_KEY)), tools=registry).run(f"use {PLAIN_KEY}")
    assert result.status == "ok"
    observation = result.observations[0]
    assert observation.ok and observation.text.count("[REDACTED:LEAKY_KEY]") >= 6
    assert leaks(result.model_dump_json(), PLAIN_KEY) == []
    write_trace(result, tmp_path / "t.jsonl")
    assert leaks((tmp_path / "t.jsonl").read_text(), PLAIN_KEY) == []


def test_a_variable_only_a_header_reads_is_a_secret_too(tmp_path, echo_url, monkeypatch):
    """Variant: the tool sends $OTHER_KEY in its header without listing it in `auth.env`; what it
    sends is a secret all the same."""
    monkeypatch.setenv("OTHER_KEY", PLAIN_KEY)
    (tmp_path / "leaky.yaml").write_text(yaml.safe_dump(leaky_manifest(echo_url, "OTHER_KEY", declared=False)))
    registry = ToolRegistry()
    registry.load_path(tmp_path / "leaky.yaml")
    result = Agent(model=ScriptedBackend(script_repeating(PLAIN_KEY)), tools=registry).run("check")
    assert result.observations[0].ok and "[REDACTED:OTHER_KEY]" in result.observations[0].text
    assert leaks(result.model_dump_json(), PLAIN_KEY) == []


def test_a_plan_and_its_steps_carry_no_key(tmp_path, leaky_tools, monkeypatch):
    """Variant: the DAG planner's plan (in the trace and the HTML graph) and steps hold the key
    the model wrote into a step's arguments."""
    monkeypatch.setenv("LEAKY_KEY", PLAIN_KEY)
    registry = ToolRegistry()
    registry.load_path(leaky_tools)
    plan = {"thought": "t", "steps": [{"id": 1, "action": "leaky.echo", "arguments": {"note": PLAIN_KEY}}]}
    answer = {"thought": "", "action": "answer", "content": f"done with {PLAIN_KEY}"}
    backend = ScriptedBackend([{"text": json.dumps(plan)}, {"text": json.dumps(answer)}])
    result = Agent(model=backend, tools=registry, planner="dag").run("go")
    assert any(e.kind == "plan" for e in result.trace)
    assert leaks(result.model_dump_json(), PLAIN_KEY) == []
    page = write_html({result.task_id: result.trace}, tmp_path / "plan.html", title="plan")
    assert leaks(Path(page).read_text(), PLAIN_KEY) == []


def test_an_older_trace_file_is_redacted_when_shown(tmp_path, leaky_tools):
    """Variant: a trace written elsewhere (an older toolkit) holding the key verbatim; `trace
    show` and `trace html` show it with the key of this machine's tools removed."""
    line = {"task_id": "t1", "kind": "task_start", "t": 0.0, "text": f"task with {PLAIN_KEY}"}
    call = {
        "task_id": "t1",
        "kind": "call",
        "t": 0.1,
        "call": {"id": "c1", "name": "leaky.echo", "arguments": {"k": PLAIN_KEY}},
    }
    trace = tmp_path / "old.jsonl"
    trace.write_text(json.dumps(line) + "\n" + json.dumps(call) + "\n")
    env = {"LEAKY_KEY": PLAIN_KEY, "TOOLKIT_TOOLS_PATH": str(leaky_tools)}
    shown = toolkit_cli("trace", "show", str(trace), env=env)
    assert shown.returncode == 0 and leaks(shown.stdout, PLAIN_KEY) == [] and "REDACTED" in shown.stdout
    page = tmp_path / "old.html"
    assert toolkit_cli("trace", "html", str(trace), "-o", str(page), env=env).returncode == 0
    assert leaks(page.read_text(), PLAIN_KEY) == []


async def test_the_mcp_server_sends_no_form_of_a_key_to_its_host(leaky_tools, isolated_home):
    """Variant: `toolkit serve mcp` returns what the tool gave, text and structured content; a
    key with a `"` in it is escaped in both."""
    pytest.importorskip("mcp")
    from mcp import Client, StdioServerParameters

    command = [sys.executable, "-m", "toolkit", "serve", "mcp", "--tools-path", str(leaky_tools), "--tools", "leaky"]
    env = {"PYTHONPATH": str(REPO), "TOOLKIT_HOME": str(isolated_home), "LEAKY_KEY": QUOTE_KEY}
    params = StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=str(REPO))
    async with Client(params) as client:
        result = await client.call_tool("leaky.echo", {"note": QUOTE_KEY})
    assert not result.is_error
    sent = result.model_dump_json()
    assert "[REDACTED:LEAKY_KEY]" in sent
    assert leaks(sent, QUOTE_KEY) == []
