"""The `python` binding: one function per action in an importable module.

Sync functions run in a daemon thread (so a hung one can be abandoned at its timeout); async ones
are awaited. A function that declares a parameter named `ctx` receives the ToolContext.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from toolkit.bindings import ActionBinding, BindingError, ToolContext
from toolkit.manifest import Manifest
from toolkit.runtime.threads import run_in_thread


class FunctionBinding:
    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn
        self.wants_ctx = "ctx" in inspect.signature(fn).parameters
        self.is_async = inspect.iscoroutinefunction(fn)

    def destination(self) -> dict[str, Any]:
        # the function as resolved, so that a module re-exporting another function shows it
        module = getattr(self.fn, "__module__", None)
        name = getattr(self.fn, "__qualname__", None) or type(self.fn).__qualname__
        return {"type": "python", "function": f"{module}.{name}"}

    async def invoke(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        kwargs = dict(arguments)
        if self.wants_ctx:
            kwargs["ctx"] = ctx
        if self.is_async:
            return await self.fn(**kwargs)
        return await run_in_thread(functools.partial(self.fn, **kwargs))


def python_bindings(manifest: Manifest) -> dict[str, ActionBinding]:
    module_name = manifest.binding.module  # type: ignore[union-attr]
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever a module does on import, only its tool fails
        raise BindingError(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from None
    bindings: dict[str, ActionBinding] = {}
    for action in manifest.actions:
        fn_name = action.function or action.name
        fn = getattr(module, fn_name, None)
        if not callable(fn) or inspect.isclass(fn):
            raise BindingError(f"module {module_name!r} has no function {fn_name!r} for action {action.name!r}")
        try:
            bindings[action.name] = FunctionBinding(fn)
        except (TypeError, ValueError) as exc:  # a callable without a signature to inspect
            raise BindingError(f"{module_name}.{fn_name} cannot be bound: {exc}") from None
    return bindings
