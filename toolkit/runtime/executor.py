"""The executor runs tool calls safely: arguments validated before the call, a timeout per action,
retries only for idempotent actions, long output truncated with a marker, approval for actions
with side effects, many calls at once under a limit. Every outcome is an Observation; only
cancellation escapes (it must, so that cancelling a task stops its calls).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from jsonschema.exceptions import ValidationError

from toolkit.bindings import ToolContext, ToolInputError
from toolkit.models.parsing import clean_text
from toolkit.registry import ResolvedAction, ToolRegistry, UnavailableToolError, UnknownToolError
from toolkit.runtime.deadlines import cut_off_after
from toolkit.runtime.dry_run import dry_run_observation
from toolkit.runtime.flat_schema import FlatCheck, flat_check
from toolkit.runtime.policy import Approver, Mode, needs_approval, resolve_approver
from toolkit.runtime.secrets import redactor_for
from toolkit.schema_validation import schema_validator, validation_errors
from toolkit.types import ErrorCode, Observation, ToolCall

log = logging.getLogger(__name__)

TRUNCATION_MARKER = "\n[... output truncated: {omitted} of {total} characters omitted ...]"


def render_content(content: Any) -> str:
    """Text for the model, whatever a tool returned: bytes, objects whose repr raises, NaN..."""
    if isinstance(content, str):
        return content
    if isinstance(content, bytes):
        return content.decode("utf-8", errors="replace")
    try:
        return json.dumps(content, ensure_ascii=False, default=_safe_str)
    except (TypeError, ValueError, RecursionError):
        return _safe_str(content)


def _safe_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a tool's object whose __str__/__repr__ raises
        return f"<unprintable {type(value).__name__}>"


class Executor:
    def __init__(
        self,
        registry: ToolRegistry,
        *,
        max_concurrency: int = 16,
        max_output_chars: int = 8000,
        max_retries: int = 1,
        retry_backoff_s: float = 0.2,
        approver: Approver | Mode | None = None,
        redact: Callable[[str], str] | None = None,
        dry_run: bool = False,
    ):
        """`approver` decides on actions not declared read-only: a callback, or `ask` | `auto` |
        `deny`; None denies them (see toolkit/runtime/policy.py for the one rule)."""
        self.registry = registry
        # a dry run records calls and runs none (toolkit/runtime/dry_run.py)
        self.dry_run = dry_run
        self.max_output_chars = max_output_chars
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.approver = resolve_approver(approver)
        # by default the registry's own secrets: every front end (agent, MCP server, LangChain
        # tools, `toolkit tools call`) gets redacted errors and outputs without having to ask
        self.redact = redact if redact is not None else redactor_for(registry.secret_env_names(), registry.environ)
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._validators: dict[str, Any] = {}
        self._flat_checks: dict[str, FlatCheck | None] = {}
        self._sessions: dict[str, dict[str, dict[str, Any]]] = {}  # session -> tool -> state
        self._shared: dict[str, dict[str, Any]] = {}  # tool -> state shared by all sessions

    def _certainly_valid(self, resolved: ResolvedAction, arguments: dict[str, Any]) -> bool:
        key = resolved.qualified_name
        if key not in self._flat_checks:
            self._flat_checks[key] = flat_check(resolved.action.input_schema)
        check = self._flat_checks[key]
        return check is not None and check(arguments)

    def _argument_errors(self, resolved: ResolvedAction, arguments: dict[str, Any]) -> list[ValidationError]:
        key = resolved.qualified_name
        if key not in self._validators:
            self._validators[key] = schema_validator(resolved.action.input_schema)
        return validation_errors(self._validators[key], arguments)

    def _fail(self, call: ToolCall, code: ErrorCode, message: str, started: float, attempts: int = 1) -> Observation:
        message = self.redact(message)
        return Observation(
            call_id=call.id,
            name=call.name,
            ok=False,
            error=code,
            message=message,
            text=f"error ({code.value}): {message}",
            duration_s=time.perf_counter() - started,
            attempts=attempts,
        )

    async def execute_many(self, calls: list[ToolCall], session_id: str = "default") -> list[Observation]:
        if len(calls) == 1:  # the common case: no task to create and schedule
            return [await self.execute(calls[0], session_id)]
        return list(await asyncio.gather(*(self.execute(c, session_id) for c in calls)))

    async def execute(self, call: ToolCall, session_id: str = "default") -> Observation:
        started = time.perf_counter()
        try:
            resolved = self.registry.resolve(call.name)
        except UnknownToolError as exc:
            return self._fail(call, ErrorCode.unknown_tool, str(exc), started)
        except UnavailableToolError as exc:
            return self._fail(call, ErrorCode.unavailable, str(exc), started)
        if not isinstance(call.arguments, dict):
            return self._fail(call, ErrorCode.invalid_arguments, "arguments must be a JSON object", started)
        if self.dry_run:
            # the arguments as the planner wrote them: a dag step's may still hold references
            # to results that do not exist (`$1`), so they are not validated here
            asks = self.approver is not None and needs_approval(resolved)
            return dry_run_observation(call, "a real run would ask for approval first" if asks else "")
        errors = (
            []
            if self._certainly_valid(resolved, call.arguments)
            else sorted(self._argument_errors(resolved, call.arguments), key=lambda e: [str(p) for p in e.path])
        )
        if errors:
            detail = "; ".join(f"{'/'.join(map(str, e.path)) or '(arguments)'}: {e.message}" for e in errors[:5])
            return self._fail(call, ErrorCode.invalid_arguments, detail, started)
        if needs_approval(resolved):
            verdict = await self.approver(call, resolved)
            if verdict is not True:
                reason = verdict if isinstance(verdict, str) else "the approval policy refused this action"
                return self._fail(call, ErrorCode.denied, reason, started)
        ctx = ToolContext(
            session_id=session_id,
            tool=resolved.tool.name,
            action=resolved.action.name,
            settings=resolved.tool.settings,
            state=self._sessions.setdefault(session_id, {}).setdefault(resolved.tool.name, {}),
            shared_state=self._shared.setdefault(resolved.tool.name, {}),
        )
        async with self._semaphore:
            return await self._invoke_with_retries(call, resolved, ctx, started)

    async def _invoke_with_retries(
        self, call: ToolCall, resolved: ResolvedAction, ctx: ToolContext, started: float
    ) -> Observation:
        retries = self.max_retries if resolved.action.annotations.idempotent else 0
        timeout = resolved.action.timeout_s
        attempt = 0
        while True:
            attempt += 1
            try:
                # not wait_for (an extra task per call) nor asyncio.timeout (a timer per call)
                with cut_off_after(timeout):
                    content = await resolved.binding.invoke(call.arguments, ctx)
            except TimeoutError:
                code, message = ErrorCode.timeout, f"no result after {timeout:g} s; the call was cut off"
            except asyncio.CancelledError:
                raise
            except ToolInputError as exc:  # the model must change its arguments: retrying is pointless
                return self._fail(call, ErrorCode.invalid_arguments, str(exc), started, attempt)
            except Exception as exc:  # noqa: BLE001 - a tool's failure is data for the model
                code, message = ErrorCode.tool_error, f"{type(exc).__name__}: {exc}"
            else:
                return self._success(call, content, started, attempt)
            if attempt > retries:
                return self._fail(call, code, message, started, attempt)
            await asyncio.sleep(self.retry_backoff_s * attempt)

    def _success(self, call: ToolCall, content: Any, started: float, attempts: int) -> Observation:
        rendered = render_content(content)
        raw = clean_text(rendered)
        text = self.redact(raw)
        if text != rendered:
            # a secret or a lone surrogate was in the structure too: keep only the clean text
            content = text
        truncated = len(text) > self.max_output_chars
        if truncated:
            total = len(text)
            text = text[: self.max_output_chars] + TRUNCATION_MARKER.format(
                omitted=total - self.max_output_chars, total=total
            )
            content = text
        return Observation(
            call_id=call.id,
            name=call.name,
            ok=True,
            content=_json_safe(content, text),
            text=text,
            truncated=truncated,
            duration_s=time.perf_counter() - started,
            attempts=attempts,
        )

    async def close_session(self, session_id: str) -> None:
        """Let tools release what they kept for one session (a browser page, say). The agent calls
        this when a task ends, so that a batch of thousands of tasks does not keep thousands of
        sessions open until the agent closes."""
        for tool, state in self._sessions.pop(session_id, {}).items():
            await self._run_closer(state, f"{tool}'s state of session {session_id}")

    async def aclose(self) -> None:
        """Close every session still open, then what tools shared across sessions."""
        for session_id in list(self._sessions):
            await self.close_session(session_id)
        shared, self._shared = self._shared, {}
        for tool, state in shared.items():
            await self._run_closer(state, f"{tool}'s shared state")

    async def _run_closer(self, state: dict[str, Any], what: str) -> None:
        closer = state.get("__close__")
        if closer is None:
            return
        try:
            result = closer()
            if asyncio.iscoroutine(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed cleanup must not lose a task's result
            log.warning("closing %s failed: %s: %s", what, type(exc).__name__, self.redact(str(exc)))


def _json_safe(content: Any, text: str) -> Any:
    """Keep structured results structured when they survive JSON; otherwise keep the text."""
    if content is None or isinstance(content, (str, int, float, bool)):
        return content if not isinstance(content, str) else text
    try:
        return json.loads(json.dumps(content))
    except (TypeError, ValueError):
        return text
