"""A large tool catalogue made from public function docs, for measuring tool retrieval.

Read at run time from the evaluation data folder (`--data-dir` or `$TOOLKIT_EVAL_DATA`; never
copied into the repository): BFCL's function docs across all its categories (and its multi-turn
API docs), ToolAlpaca's API functions, API-Bank's API descriptions. Names are deduplicated (the
first description of a name wins), so each name is one entry of the catalogue.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evals.bfcl.data import to_tool_specs
from toolkit.types import ToolSpec


def eval_data_root(data_dir: str | Path | None = None) -> Path:
    root = Path(data_dir or os.environ.get("TOOLKIT_EVAL_DATA") or "")
    if not data_dir and not os.environ.get("TOOLKIT_EVAL_DATA"):
        raise FileNotFoundError("no evaluation data folder: pass --data-dir or set TOOLKIT_EVAL_DATA")
    if root.name == "bfcl":
        root = root.parent
    if not (root / "bfcl").is_dir():
        raise FileNotFoundError(
            f"no bfcl/ folder under {root}; point --data-dir / TOOLKIT_EVAL_DATA at the evaluation data"
        )
    return root


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def bfcl_functions(root: Path) -> Iterator[dict[str, Any]]:
    for path in sorted((root / "bfcl").glob("BFCL_v*_*.json")):
        for entry in _jsonl(path):
            yield from entry.get("function") or []
    for path in sorted((root / "bfcl" / "multi_turn_func_doc").glob("*.json")):
        yield from _jsonl(path)


_TA_PARAMS = re.compile(r"^Parameters:\s*(\{.*\})\s*$", re.M)


def toolalpaca_functions(root: Path) -> Iterator[dict[str, Any]]:
    """ToolAlpaca: `Function_Description` maps a function to 'summary\\nParameters: {json}\\nOutput...'."""
    for path in sorted((root / "toolalpaca").glob("*.json")):
        for api in json.loads(path.read_text(encoding="utf-8")):
            for name, doc in (api.get("Function_Description") or {}).items():
                if name == "components" or not isinstance(doc, str):
                    continue
                summary = doc.split("\n", 1)[0]
                properties: dict[str, Any] = {}
                match = _TA_PARAMS.search(doc)
                if match:
                    try:
                        properties = {
                            k: {"type": "string", "description": str(v)} for k, v in json.loads(match.group(1)).items()
                        }
                    except json.JSONDecodeError:
                        pass
                yield {
                    "name": f"{api.get('Name', 'api')}.{name}".replace(" ", "_"),
                    "description": f"{api.get('Description', '')}: {summary}",
                    "parameters": {"type": "dict", "properties": properties},
                }


_APIBANK_DOC = re.compile(r'^\{"name": .*\}$', re.M)


def apibank_functions(root: Path) -> Iterator[dict[str, Any]]:
    """API-Bank: API descriptions are JSON lines inside each prompt ('API descriptions:' block)."""
    for path in sorted((root / "apibank").glob("level-*.json")):
        for item in json.loads(path.read_text(encoding="utf-8")):
            texts = [item.get("instruction", "")] + [json.dumps(a) for a in item.get("apis", []) if isinstance(a, dict)]
            for text in texts:
                for line in _APIBANK_DOC.findall(text or ""):
                    try:
                        doc = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    params = doc.get("input_parameters") or {}
                    yield {
                        "name": doc["name"],
                        "description": doc.get("description", ""),
                        "parameters": {"type": "dict", "properties": params if isinstance(params, dict) else {}},
                    }


def public_tool_specs(data_dir: str | Path | None = None) -> list[ToolSpec]:
    """The deduplicated catalogue, BFCL first (so BFCL's own descriptions win for its names)."""
    root = eval_data_root(data_dir)
    seen: dict[str, dict[str, Any]] = {}
    for source in (bfcl_functions, toolalpaca_functions, apibank_functions):
        for function in source(root):
            name = function.get("name")
            if isinstance(name, str) and name and name not in seen:
                seen[name] = function
    specs = []
    for function in seen.values():
        try:
            specs.extend(to_tool_specs([function]))
        except Exception:  # noqa: BLE001 - one odd doc never stops the catalogue
            specs.append(ToolSpec(name=function["name"], description=str(function.get("description", ""))))
    return specs
