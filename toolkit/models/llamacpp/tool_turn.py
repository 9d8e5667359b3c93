"""One tool turn of the embedded model: zero or more calls, or an answer, decoded under grammars.

The reply is written in the model's tool format (formats.py) and decoded in stages that continue
one sequence (each stage reuses the KV cache of the one before):

1. call or answer? `hermes`: the reply is decoded freely until it opens a `<tool_call>` (then it
   calls) or ends (then its text is the answer), as llama.cpp's server does with its lazy
   grammar. `generic`: the answer is the `final_answer` pseudo-tool, one of the choices of 2.
   tool_choice `required` or a tool's name opens a call at once; `none` answers.
2. the name: after `{"name": "`, a choice among the offered names, decoded until what was written
   begins only one of them: the rest of the name is appended as tokens, not decoded one step
   each (BFCL's names run to 10+ tokens);
3. the arguments: after `", "arguments": `, under that tool's JSON schema (sanitised for
   llama.cpp's converter; a generic JSON object grammar if it still can't be converted), or the
   final answer's words, at most `sampling.answer_max_tokens` of them (0: none are decoded);
4. one more call? After the call's closing text, a few tokens decoded freely: a call opening
   (as in 1) means one more call, anything else ends the turn (with `parallel_tool_calls`, up to
   MAX_CALLS_PER_TURN calls). A call that repeats one already made this turn ends the turn and is
   dropped: small models loop.

The calls are then validated against the original schemas (toolkit.models.parsing), so a call
either parses and validates or comes back as `parse_error`; it can't come back as junk text.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from toolkit.models.base import BackendError
from toolkit.models.grammar import choice_gbnf
from toolkit.models.llamacpp.engine import JobResult
from toolkit.models.llamacpp.formats import ARGS_INFIX, NAME_OPEN, ToolFormat
from toolkit.models.llamacpp.prompt import FINAL_ANSWER, final_grammar
from toolkit.models.parsing import parse_native_calls
from toolkit.types import LLMRequest, LLMResponse

if TYPE_CHECKING:
    from toolkit.models.llamacpp.backend import LlamaCppBackend

MAX_CALLS_PER_TURN = 8  # as the react planner's default max_calls_per_turn
# A reply in the hermes format that can't open a call: its first character is not `<` (the
# `<tool_call>` token), `{` or a backquote (the openings _untagged_call takes as calls).
TEXT_NOT_CALL_GBNF = "root ::= [^<{`\\x00] [^\\x00]*"
MORE_TOKENS = 4  # decoded after a call to see whether another opens ("\n<tool_call>", "```json\n{")
OPENING_TOKENS = 6  # decoded before deciding whether an untagged reply opens a call ("```json\n{")
_UNTAGGED_CALL = re.compile(r"\s*(```[a-z]*\s*)?(<[a-z_]+>\s*)?(\{|$)")


def _untagged_call(text: str) -> bool:
    return _UNTAGGED_CALL.match(text) is not None


def signature(name: str, arguments: object) -> str:
    return name + json.dumps(arguments, sort_keys=True, ensure_ascii=False)


def previous_calls(request: LLMRequest) -> set[str]:
    """Calls already made in this conversation whose results it shows."""
    answered = {m.tool_call_id for m in request.messages if m.role == "tool"}
    return {
        signature(c.name, c.arguments)
        for m in request.messages
        if m.role == "assistant"
        for c in m.tool_calls
        if c.id in answered or not answered
    }


def completed_choice(text: str, options: list[str]) -> str | None:
    """The option `text` names: itself, else the only option it begins (None: cut off)."""
    if text in options:
        return text
    started = [o for o in options if o.startswith(text)] if text else []
    return started[0] if len(started) == 1 else None


class ToolTurn:
    """The stages of one tool turn for one request (see the module docstring)."""

    def __init__(self, backend: LlamaCppBackend, request: LLMRequest, fmt: ToolFormat):
        self.backend = backend
        self.request = request
        self.fmt = fmt
        self.results: list[JobResult] = []
        self.names = [t.name for t in request.tools]
        self.schemas = {t.name: t.parameters for t in request.tools}

    # --- helpers -----------------------------------------------------------------------------

    def _text_tokens(self, text: str) -> list[int]:
        """Format text (tags are special tokens in the models that have them)."""
        return self.backend.engine.tokenize(text, add_bos=False, special=True)

    def _budget(self) -> int:
        return max(self.request.sampling.max_tokens - sum(len(r.tokens) for r in self.results), 16)

    async def _run(self, prompt: list[int], **fields: object) -> JobResult:
        result = await self.backend.run_job(self.backend._job(self.request, prompt, **fields))
        self.results.append(result)
        if result.finish_reason == "error":
            raise BackendError(result.error or "decoding failed")
        return result

    def completed_tokens(self, tokens: list[int], text: str) -> list[int]:
        """The model's own tokens for the part of `text` it wrote (up to the closing quote, which a
        stop may have cut from the text but not from the tokens), then the rest of `text`."""
        written = self.backend.engine.detokenize(tokens)
        if not text.startswith(written):
            return self._text_tokens(text)
        rest = text[len(written) :]
        return tokens + (self._text_tokens(rest) if rest else [])

    # --- the turn ------------------------------------------------------------------------------

    async def run(self) -> LLMResponse:
        choice = self.request.tool_choice
        fmt = self.fmt
        if fmt.answer_in_text and choice == "none":
            return await self._text_answer(forbid_call=True)
        if fmt.answer_in_text and choice == "auto":
            opening = await self._opening()
            if opening is None:
                return self._answer_response()
            prelude, prompt = opening
        else:  # the reply opens a call at once (generic: the answer is one of the names)
            prelude, prompt = "", self.backend.prompt_tokens(self.request, with_tools=True, suffix=fmt.first_call)
        if choice in self.names:
            options = [choice]
        elif fmt.answer_in_text or choice == "required":
            options = self.names
        elif choice == "none":
            options = [FINAL_ANSWER]
        else:
            options = self.names + [FINAL_ANSWER]
        return await self._calls(prompt, prelude, options)

    async def _opening(self) -> tuple[str, list[int]] | None:
        """Hermes, tool_choice auto: the reply decoded freely until it opens a call. Returns the
        text before the call and the sequence up to the first call's name; None when the reply is
        an answer (kept in `self._answer`). A reply that opens the way models often write a call
        without the tag (`{"name"...`, a ```json fence: llama.cpp's server takes these as calls
        too) is taken as opening a call, written again in the format from its start.
        With answer_max_tokens 0 only the opening is decoded: a call must open the reply."""
        prompt = self.backend.prompt_tokens(self.request, with_tools=True)
        sampling = self.request.sampling
        budget = sampling.max_tokens if sampling.answer_max_tokens is None else sampling.answer_max_tokens
        tag = self.fmt.opener.rstrip("\n")
        head = await self._run(prompt, stop=(tag,), max_tokens=OPENING_TOKENS)
        text, tokens, result = head.text, head.tokens, head
        if not self._tagged(head) and _untagged_call(text):
            return "", prompt + self._text_tokens(self.fmt.first_call)
        if not self._tagged(head) and head.finish_reason == "length" and budget > OPENING_TOKENS:
            result = await self._run(prompt + tokens, stop=(tag,), max_tokens=max(budget - len(tokens), 1))
            text, tokens = text + result.text, tokens + result.tokens
        if not self._tagged(result):
            self._answer = result
            self._answer_text = text
            return None
        return text, prompt + self.completed_tokens(tokens, text + self.fmt.first_call)

    def _tagged(self, result: JobResult) -> bool:
        """The job stopped at the call tag (its last token holds it; the text was cut before)."""
        tag = self.fmt.opener.rstrip("\n")
        return result.finish_reason == "stop" and self.backend.engine.detokenize(result.tokens).endswith(tag)

    def _answer_response(self) -> LLMResponse:
        if self.request.sampling.answer_max_tokens == 0:  # the caller only wants to know it answers
            return LLMResponse(text="")
        finish = "length" if self._answer.finish_reason == "length" else "stop"
        return LLMResponse(text=self._answer_text.strip(), finish_reason=finish)

    async def _text_answer(self, *, forbid_call: bool) -> LLMResponse:
        """Hermes: the answer in words (a call can't open it when `forbid_call`)."""
        cap = self.request.sampling.answer_max_tokens
        if cap == 0:
            return LLMResponse(text="")
        budget = self._budget() if cap is None else min(self._budget(), max(cap, 1))
        self._answer = await self._run(
            self.backend.prompt_tokens(self.request, with_tools=True),
            grammar=TEXT_NOT_CALL_GBNF if forbid_call else None,
            stop=(self.fmt.opener.rstrip("\n"),),
            max_tokens=budget,
        )
        self._answer_text = self._answer.text
        return self._answer_response()

    async def _calls(self, prompt: list[int], prelude: str, options: list[str]) -> LLMResponse:
        """Calls from `prompt` (which ends where the first call's name begins) until the turn
        ends; the name of each is one of `options`."""
        request = self.request
        calls: list[dict[str, object]] = []
        made: set[str] = set()
        before = previous_calls(request)
        base = prompt  # the sequence where the first call's name begins, to restart from
        while True:
            name, prompt = await self._name(prompt, options)
            if name is None:
                return LLMResponse(text=prelude, parse_error="the action choice was cut off")
            if name == FINAL_ANSWER:
                return await self._final_answer(prompt)
            arguments, prompt, error = await self._arguments(prompt, name)
            if error is not None:
                return error if not calls else self._parsed(calls, prelude)
            key = signature(name, arguments)
            if key in made:  # a loop: the same call again
                break
            if not calls and key in before and FINAL_ANSWER in options:
                # Small models tend to repeat the call whose result they were just shown. The same
                # call gives the same result, so the useful next move is the answer.
                return await self._final_answer(base + self.backend.continuation(FINAL_ANSWER + '"'))
            if not calls and key in before and self.fmt.answer_in_text and request.tool_choice == "auto":
                return await self._text_answer(forbid_call=True)
            made.add(key)
            calls.append({"name": name, "arguments": arguments})
            if not request.parallel_tool_calls or len(calls) >= MAX_CALLS_PER_TURN or request.tool_choice in self.names:
                break
            more = await self._more(prompt)
            if more is None:
                break
            prompt = more
            options = [o for o in options if o != FINAL_ANSWER]
        return self._parsed(calls, prelude)

    def _parsed(self, calls: list[dict[str, object]], prelude: str) -> LLMResponse:
        response = parse_native_calls(calls, self.request.tools).to_response()
        return response.model_copy(update={"text": prelude.strip()}) if prelude.strip() else response

    async def _name(self, prompt: list[int], options: list[str]) -> tuple[str | None, list[int]]:
        if len(options) == 1:
            return options[0], prompt + self.backend.continuation(options[0] + '"')
        first = await self._run(
            prompt, grammar=choice_gbnf(options, suffix='"'), stop=('"',), max_tokens=64, choices=tuple(options)
        )
        name = completed_choice(first.text, options)
        if name is None:
            return None, prompt
        return name, prompt + self.completed_tokens(first.tokens, name + '"')

    async def _arguments(self, prompt: list[int], name: str) -> tuple[dict[str, object], list[int], LLMResponse | None]:
        """The arguments of `name` after `prompt` (which ends with the name's closing quote), and
        the sequence to the end of the call (its closer written)."""
        budget = self._budget()
        grammar, _ = self.backend.grammars.for_schema(self.schemas[name], budget_tokens=budget)
        prompt = prompt + self.backend.continuation(ARGS_INFIX)
        second = await self._run(prompt, grammar=grammar, stop_at_json_end=True, stop=(), max_tokens=budget)
        try:
            arguments = json.loads(second.text, strict=False)
        except ValueError:
            reason = "it hit max_tokens" if second.finish_reason == "length" else second.error or "invalid JSON"
            return (
                {},
                prompt,
                LLMResponse(
                    text=second.text,
                    finish_reason="length" if second.finish_reason == "length" else "error",
                    parse_error=f"the arguments of {name} were not complete JSON ({reason})",
                ),
            )
        # the model's last token may hold more than the JSON (`}}`): completed_tokens keeps it
        # only when it matches the closer
        return arguments, prompt + self.completed_tokens(second.tokens, second.text + self.fmt.closer), None

    async def _final_answer(self, prompt: list[int]) -> LLMResponse:
        """Generic format: the final answer's words after `prompt` (up to `final_answer"`)."""
        cap = self.request.sampling.answer_max_tokens
        if cap == 0:  # the caller wants only to know that the model answers instead of calling
            return LLMResponse(text="")
        budget = self._budget() if cap is None else min(self._budget(), max(cap, 16))
        second = await self._run(
            prompt + self.backend.continuation(ARGS_INFIX),
            grammar=final_grammar(budget),
            stop_at_json_end=True,
            stop=(),
            max_tokens=budget,
        )
        try:
            arguments = json.loads(second.text, strict=False)
        except ValueError:
            reason = "it hit max_tokens" if second.finish_reason == "length" else second.error or "invalid JSON"
            return LLMResponse(
                text=second.text,
                finish_reason="length" if second.finish_reason == "length" else "error",
                parse_error=f"the arguments of {FINAL_ANSWER} were not complete JSON ({reason})",
            )
        answer = arguments.get("answer") if isinstance(arguments, dict) else None
        return LLMResponse(text=answer if isinstance(answer, str) else json.dumps(arguments))

    async def _more(self, prompt: list[int]) -> list[int] | None:
        """After a call's closer: the sequence up to the next call's name when the model opens one
        more call, else None (it ended the turn). Decoded freely for a few tokens, as the opening
        is: a grammar that allowed only the next opener or the end would force a model that wants
        a newline and then the end (Qwen 0.5B: `\n`, then <|im_end|>) into spelling out a tag."""
        tag = self.fmt.opener.rstrip("\n") or "{"
        result = await self._run(prompt, stop=(tag,), max_tokens=MORE_TOKENS)
        head = self.backend.engine.detokenize(result.tokens).lstrip()
        opens = head.startswith(tag) or (self.fmt.answer_in_text and bool(head) and _untagged_call(head))
        return prompt + self.completed_tokens(result.tokens, self.fmt.next_call) if opens else None


__all__ = ["ToolTurn", "MAX_CALLS_PER_TURN", "completed_choice", "previous_calls", "signature", "NAME_OPEN"]
