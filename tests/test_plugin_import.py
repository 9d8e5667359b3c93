"""Import a BMTools-style plugin served over real HTTP and call it through registry + executor."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from tests.fixtures.plugin_server import serve
from toolkit import ToolRegistry
from toolkit.cli.main import app
from toolkit.interop.plugin import PluginImportError, import_plugin
from toolkit.manifest import load_manifest
from toolkit.runtime.executor import Executor
from toolkit.types import ErrorCode, ToolCall


@pytest.fixture(scope="module")
def plugin_url():
    server, url = serve()
    yield url
    server.shutdown()


async def test_imported_plugin_operations_run_through_the_executor(plugin_url):
    manifest = import_plugin(plugin_url)
    assert manifest.name == "weather"
    assert {a.name for a in manifest.actions} == {"getForecast", "addObservation"}
    registry = ToolRegistry()
    registry.add_manifest(manifest, source=plugin_url)
    executor = Executor(registry, approver="auto")  # addObservation (POST) is not read-only
    obs = await executor.execute(ToolCall(name="weather.getForecast", arguments={"city": "Paris", "days": 2}))
    assert obs.ok, obs.message
    assert obs.content == {"city": "Paris", "days": 2, "forecast": ["sunny", "sunny"]}
    posted = await executor.execute(ToolCall(name="weather.addObservation", arguments={"city": "Oslo", "temp_c": -3.5}))
    assert posted.ok and posted.content["stored"] >= 1
    missing = await executor.execute(ToolCall(name="weather.addObservation", arguments={"city": "Oslo"}))
    assert missing.error == ErrorCode.invalid_arguments  # the $ref'd body schema was resolved


def test_cli_import_writes_a_manifest_that_loads(plugin_url, tmp_path):
    out = tmp_path / "weather.yaml"
    result = CliRunner().invoke(app, ["tools", "import", plugin_url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    assert manifest.binding.type == "openapi" and len(manifest.actions) == 2
    assert yaml.safe_load(out.read_text())["binding"]["spec"] == f"{plugin_url}/openapi.json"


def test_import_of_a_missing_plugin_is_a_clear_error(plugin_url):
    with pytest.raises(PluginImportError, match="cannot fetch"):
        import_plugin(plugin_url + "/nothing/here.json")
