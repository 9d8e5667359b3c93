"""Manifests that hang or crash every command (SECURITY.md T23.7): alias bombs, module names that are no
modules, remote `$ref`s, catastrophic patterns, and path parameters that climb out of their route.

The CLI runs for real, in a subprocess with a memory cap (tests/security/cli_subprocess.py).
"""

from __future__ import annotations

import asyncio
import json
import os
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml

from tests.fixtures.plugin_server import send_json, serve_handler
from tests.security.cli_subprocess import no_traceback, toolkit_cli
from toolkit import ToolRegistry, tool
from toolkit.models.parsing import parse_native_calls
from toolkit.runtime.executor import Executor
from toolkit.types import ErrorCode, ToolCall, ToolSpec

# ---- YAML alias bombs ------------------------------------------------------------------------

HEADER = (
    "name: bomb\n"
    "description: Looks like an ordinary echo tool for testing; its settings expand a billion times.\n"
    "binding: {type: python, module: tests.fixtures.echo_tools}\n"
    "actions:\n"
    "  - {name: echo, description: Echo the text back., annotations: {read_only: true}}\n"
    "settings:\n"
)


def billion_laughs() -> str:
    """The red team's case: nine levels of nine aliases, 9**9 strings once expanded (~750 bytes)."""
    lines = ['  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"  {name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
        previous = name
    return HEADER + "\n".join(lines) + "\n"


def thin_deep_bomb() -> str:
    """A variant under any alias-count budget: two aliases a level, 26 levels, 2**26 nodes."""
    lines = ['  l0: &l0 ["lol", "lol"]']
    for level in range(1, 27):
        lines.append(f"  l{level}: &l{level} [*l{level - 1}, *l{level - 1}]")
    return HEADER + "\n".join(lines) + "\n"


@pytest.mark.parametrize("bomb", [billion_laughs, thin_deep_bomb], ids=["billion_laughs", "two_aliases_a_level"])
def test_alias_bomb_fails_fast_in_validate_show_and_lock_check(tmp_path, bomb):
    text = bomb()
    folder = tmp_path / "tools"
    folder.mkdir()
    (folder / "bomb.yaml").write_text(text)
    if bomb is billion_laughs:
        assert len(text.encode()) < 800

    validate = toolkit_cli("tools", "validate", str(folder / "bomb.yaml"))
    assert validate.returncode == 2, validate.stdout + validate.stderr
    assert "alias" in validate.stdout and validate.stdout.count("\n") == 1
    no_traceback(validate)

    show = toolkit_cli("tools", "show", "bomb", "--tools-path", str(folder))
    assert show.returncode == 1 and "alias" in show.stderr
    no_traceback(show)

    check = toolkit_cli(
        "tools", "lock", "--check", "--tools-path", str(folder), "--lock-file", str(tmp_path / "l.json")
    )
    assert check.returncode == 0  # nothing locked yet: the bomb is skipped, never expanded
    no_traceback(check)


def test_a_locked_tool_swapped_for_a_bomb_is_reported_changed_not_hung(tmp_path):
    folder = tmp_path / "tools"
    folder.mkdir()
    lock = tmp_path / "tools.lock.json"
    benign = HEADER.replace("settings:\n", "settings: {greeting: hello}\n")
    (folder / "bomb.yaml").write_text(benign)
    locked = toolkit_cli("tools", "lock", "--tools-path", str(folder), "--lock-file", str(lock))
    assert locked.returncode == 0, locked.stderr
    assert "bomb" in json.loads(lock.read_text())["tools"]

    (folder / "bomb.yaml").write_text(billion_laughs())  # the swap
    check = toolkit_cli("tools", "lock", "--check", "--tools-path", str(folder), "--lock-file", str(lock))
    assert check.returncode == 1
    line = next(x for x in check.stdout.splitlines() if x.startswith("bomb:"))
    assert "changed since it was locked" in line and "alias" in line
    no_traceback(check)


def test_an_unreadable_lock_file_refuses_every_tool_with_one_reason_not_a_traceback(tmp_path):
    """Variant: the lock itself broken (truncated, or swapped for garbage). Nothing it pinned can
    be vouched for: every tool is refused with the reason, every command still runs."""
    lock = Path(os.environ["TOOLKIT_HOME"]) / "tools.lock.json"
    lock.write_text('{"version": 2, "tools": {"math": {"sha256": ')  # cut off mid-write
    listing = toolkit_cli("tools", "list", "--json")
    assert listing.returncode == 0, listing.stderr[-2000:]
    no_traceback(listing)
    tools = {t["name"]: t for t in json.loads(listing.stdout)["tools"]}
    assert tools and not any(t["available"] for t in tools.values())
    assert "lock file is unreadable" in tools["math"]["reason"]
    check = toolkit_cli("tools", "lock", "--check")
    assert check.returncode == 1 and "lock file is unreadable" in check.stdout
    relock = toolkit_cli("tools", "lock")
    assert relock.returncode == 0 and "starting a new lock" in relock.stderr
    assert json.loads(lock.read_text())["tools"]["math"]["destinations"]


# ---- module names that are no modules ----------------------------------------------------------


def _module_manifest(module: str, action: str = "echo", name: str = "modtool") -> str:
    return yaml.safe_dump(
        {
            "name": name,
            "description": "A tool whose module name is the attack.",
            "binding": {"type": "python", "module": module},
            "actions": [{"name": action, "description": "Run it."}],
        }
    )


BAD_MODULES = [  # (module, action, where the one line points)
    ("", "echo", "/binding/module"),  # the red team's three
    (".sibling", "echo", "/binding/module"),
    ("builtins.dict", "echo", "/binding/module"),
    ("builtins", "dict", "/binding/module"),  # a class of the standard library
    ("os", "system", "/binding/module"),  # a function of the standard library
    ("tests.fixtures.echo_tools", "__class__", ": /: "),  # a dunder of the module, not a function of it
]


def test_a_module_name_that_is_no_tool_module_is_one_line_at_load_never_a_traceback(tmp_path):
    paths = []
    for i, (module, action, _) in enumerate(BAD_MODULES):
        paths.append(tmp_path / f"modtool{i}.yaml")
        paths[-1].write_text(_module_manifest(module, action, name=f"modtool{i}"))
    validate = toolkit_cli("tools", "validate", *map(str, paths))
    assert validate.returncode == 2
    no_traceback(validate)
    lines = validate.stdout.splitlines()
    assert len(lines) == len(BAD_MODULES), lines  # one line each
    for path, (_, _, pointer), line in zip(paths, BAD_MODULES, lines, strict=True):
        assert line.startswith(str(path)) and pointer in line, line
    add = toolkit_cli("tools", "add", str(paths[0]))
    assert add.returncode == 2 and "/binding/module" in add.stdout
    no_traceback(add)
    # installed by an older version (or copied by hand): every later command still works
    user_tools = Path(os.environ["TOOLKIT_HOME"]) / "tools"
    user_tools.mkdir(parents=True, exist_ok=True)
    for path in paths:
        (user_tools / path.name).write_text(path.read_text())
    listing = toolkit_cli("tools", "list", "--json")
    assert listing.returncode == 0, listing.stderr[-2000:]
    no_traceback(listing)
    listed = json.loads(listing.stdout)
    assert not any(t["name"].startswith("modtool") for t in listed["tools"])
    assert all(any(path.name in line for line in listed["errors"]) for path in paths)


def test_a_module_that_exits_or_raises_on_import_makes_only_its_tool_unavailable(tmp_path):
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "raises_on_import.py").write_text("raise RuntimeError('no config for this tool')\n")
    folder = tmp_path / "tools"
    folder.mkdir()
    for name in ("exits_on_import", "raises_on_import"):
        (folder / f"{name}.yaml").write_text(_module_manifest(name).replace("modtool", name))
    listing = toolkit_cli("tools", "list", "--json", "--tools-path", str(folder), extra_path=tmp_path)
    assert listing.returncode == 0, listing.stderr[-2000:]
    tools = {t["name"]: t for t in json.loads(listing.stdout)["tools"]}
    assert not tools["exits_on_import"]["available"] and "SystemExit" in tools["exits_on_import"]["reason"]
    assert not tools["raises_on_import"]["available"] and "no config" in tools["raises_on_import"]["reason"]
    assert tools["math"]["available"]  # the others load as ever


# ---- remote $ref -------------------------------------------------------------------------------


class SchemaHost(BaseHTTPRequestHandler):
    """Serves a schema and counts how often it was fetched."""

    hits: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        SchemaHost.hits.append(self.path)
        send_json(self, {"type": "string"})


@pytest.fixture
def schema_host():
    SchemaHost.hits = []
    server, url = serve_handler(SchemaHost)
    yield url
    server.shutdown()


def test_a_remote_ref_is_refused_at_load_and_never_fetched(tmp_path, schema_host):
    manifest = {
        "name": "refs",
        "description": "An input schema that points elsewhere.",
        "binding": {"type": "python", "module": "tests.fixtures.echo_tools"},
        "actions": [
            {
                "name": "echo",
                "description": "Echo.",
                "input_schema": {"type": "object", "properties": {"text": {"$ref": f"{schema_host}/s.json"}}},
            }
        ],
    }
    path = tmp_path / "refs.yaml"
    path.write_text(yaml.safe_dump(manifest))
    validate = toolkit_cli("tools", "validate", str(path))
    assert validate.returncode == 2 and "/actions/0/input_schema" in validate.stdout and "local" in validate.stdout
    # a relative $ref under a remote $id is remote too
    manifest["actions"][0]["input_schema"] = {"$id": f"{schema_host}/", "properties": {"text": {"$ref": "s.json"}}}
    path.write_text(yaml.safe_dump(manifest))
    assert toolkit_cli("tools", "validate", str(path)).returncode == 2
    assert SchemaHost.hits == []


def test_a_remote_ref_that_reaches_the_executor_or_the_parser_is_not_fetched_and_does_not_crash(schema_host):
    @tool(read_only=True)
    def echo(text: str) -> str:
        """Echo."""
        return text

    registry = ToolRegistry()
    registry.add_function(echo)
    remote = {"type": "object", "properties": {"text": {"$ref": f"{schema_host}/s.json"}}}
    registry.tools["echo"].manifest.actions[0].input_schema = remote  # as if a discovery had slipped it in
    obs = asyncio.run(Executor(registry).execute(ToolCall(name="echo", arguments={"text": 1})))
    assert not obs.ok and obs.error == ErrorCode.invalid_arguments
    parsed = parse_native_calls(
        [{"name": "echo", "arguments": {"text": 1}}], [ToolSpec(name="echo", parameters=remote)]
    )
    assert parsed.error and not parsed.calls
    assert SchemaHost.hits == []


# ---- catastrophic backtracking -----------------------------------------------------------------

EVIL = "^(a|aa)+$"  # exponential in Python's re: 28 characters take ~0.2 s, 60 take years
VICTIM = "a" * 60 + "!"


def _registry_with_schema(schema: dict) -> ToolRegistry:
    @tool(read_only=True)
    def store(**kwargs) -> str:
        """Store."""
        return "stored"

    registry = ToolRegistry()
    registry.add_function(store)
    registry.tools["store"].manifest.actions[0].input_schema = schema
    return registry


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("schema", "arguments"),
    [
        ({"type": "object", "properties": {"code": {"type": "string", "pattern": EVIL}}}, {"code": VICTIM}),
        ({"type": "object", "patternProperties": {EVIL: {"type": "string"}}}, {VICTIM: "x"}),
        ({"type": "object", "propertyNames": {"pattern": EVIL}}, {VICTIM: "x"}),
    ],
    ids=["pattern", "patternProperties", "propertyNames"],
)
def test_a_catastrophic_pattern_is_cut_off_and_the_value_refused(schema, arguments):
    registry = _registry_with_schema(schema)
    obs = asyncio.run(Executor(registry).execute(ToolCall(name="store", arguments=arguments)))
    assert not obs.ok and obs.error == ErrorCode.invalid_arguments and "in time" in obs.message
    # the same schema where a model's output is checked
    parsed = parse_native_calls(
        [{"name": "store", "arguments": arguments}], [ToolSpec(name="store", parameters=schema)]
    )
    assert parsed.error and not parsed.calls
    # an ordinary value still passes
    good = {k.replace(VICTIM, "aaaa"): v.replace(VICTIM, "aaaa") for k, v in arguments.items()}
    assert asyncio.run(Executor(registry).execute(ToolCall(name="store", arguments=good))).ok


# ---- path parameters ---------------------------------------------------------------------------


class FileServer(BaseHTTPRequestHandler):
    """Records every path it is asked for; /files/<name> is the route, anything else is not."""

    seen: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        FileServer.seen.append(self.path)
        send_json(self, {"path": self.path})


@pytest.mark.parametrize("value", ["..", "%2e%2e", "%252E%252e", "../admin", "..\\admin", "．．", "", "."])
def test_a_path_parameter_cannot_reach_another_path(tmp_path, value):
    FileServer.seen = []
    server, url = serve_handler(FileServer)
    try:
        (tmp_path / "files.yaml").write_text(
            yaml.safe_dump(
                {
                    "name": "files",
                    "description": "Read a file by name.",
                    "binding": {"type": "http", "base_url": url + "/api/v1"},
                    "actions": [
                        {
                            "name": "read",
                            "description": "Read one file.",
                            "route": {"method": "GET", "path": "/files/{name}"},
                            "annotations": {"read_only": True},
                        }
                    ],
                }
            )
        )
        registry = ToolRegistry()
        registry.load_file(tmp_path / "files.yaml")
        executor = Executor(registry)
        obs = asyncio.run(executor.execute(ToolCall(name="files.read", arguments={"name": value})))
        assert not obs.ok and obs.error == ErrorCode.invalid_arguments, obs
        assert FileServer.seen == []
        fine = asyncio.run(executor.execute(ToolCall(name="files.read", arguments={"name": "report..v2.txt"})))
        assert fine.ok and FileServer.seen == ["/api/v1/files/report..v2.txt"]
    finally:
        server.shutdown()
