"""WebCPM-style long-form QA: search, browse, quote supporting facts, then answer with numbered
citations [1], [2] to the quotes and their URLs.

The loop is driven by the planner, not left to the model: small local models can't be trusted to
walk a browser for ten steps, but they can pick a sentence from a short list and write a
paragraph from quotes. Every browser action goes through `ctx.execute_one` (so the executor's
policy applies and the trace shows it):

1. search: `browser.search(question)`;
2. read: for each of the top `pages` results, `browser.load` and `browser.scroll_down` through
   up to `windows_per_page` windows, keeping the page's sentences;
3. select: sentences ranked by BM25 against the question; per page the best few are offered to
   the model under a choice constraint (`1`..`k` or `none`); `select="bm25"` picks without
   the model (the best sentences, at most `quotes_per_page` a page, none far below the best);
4. quote: for each page with chosen sentences, `browser.load` it again and `browser.quote` them,
   then `browser.finish` returns the quotes with their URLs;
5. answer: the model writes the answer from the numbered quotes; citations are checked (those
   pointing nowhere dropped, uncited quotes attached to the sentence they support) and the
   sources listed under the answer. An answer stating numbers (dates, figures) that no quote
   holds is replaced by the cited quotes themselves (`check_numbers`): tiny models invent dates.
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from toolkit.planner.webqa_text import (
    ANSWER_SYSTEM,
    CHOOSE_SYSTEM,
    Candidate,
    answer_prompt,
    choose_prompt,
    cite,
    extractive_answer,
    pick_by_bm25,
    rank_candidates,
    references,
    sentences,
    ungrounded_numbers,
)
from toolkit.runtime.context import PlannerError, RunContext
from toolkit.types import Constraint, LLMRequest, Message, Observation, Sampling, Step, ToolCall, Usage

NO_FACTS = "I could not find supporting facts for this question on the pages I read."


class WebQAPlanner:
    name = "webqa"

    def __init__(
        self,
        *,
        tool: str = "browser",
        pages: int = 3,
        windows_per_page: int = 6,
        candidates_per_page: int = 4,
        quotes_per_page: int = 1,
        max_quotes: int = 4,
        select: Literal["model", "bm25"] = "model",
        min_ratio: float = 0.3,
        answer_max_tokens: int = 256,
        check_numbers: bool = True,
    ):
        if select not in ("model", "bm25"):
            raise ValueError(f"webqa: select must be `model` or `bm25`, not {select!r}")
        self.tool = tool
        self.pages = max(1, pages)
        self.windows_per_page = max(1, windows_per_page)
        self.candidates_per_page = max(1, candidates_per_page)
        self.quotes_per_page = max(1, quotes_per_page)
        self.max_quotes = max(1, max_quotes)
        self.select = select
        self.min_ratio = min_ratio
        self.answer_max_tokens = answer_max_tokens
        self.check_numbers = check_numbers

    # ---- the steps --------------------------------------------------------------------------

    async def run(self, ctx: RunContext) -> str:
        self._check_tool(ctx)
        question = ctx.task.strip()
        results = await self._search(ctx, question)
        reserve = 3  # select, quote, answer
        budget = max(1, min(self.pages, ctx.max_steps - len(ctx.steps) - reserve))
        candidates: list[Candidate] = []
        failures: list[str] = []
        for result in results[:budget]:
            candidates += await self._read(ctx, result, failures)
        if failures and len(failures) == min(budget, len(results)):
            raise PlannerError(f"webqa: no result could be opened: {failures[0]}")
        ranked = rank_candidates(question, candidates)
        chosen = await self._select(ctx, question, ranked, results)
        if not chosen:
            return await self._answer(ctx, question, [])
        quotes = await self._quote(ctx, chosen)
        return await self._answer(ctx, question, quotes)

    def _check_tool(self, ctx: RunContext) -> None:
        tool = ctx.registry.tools.get(self.tool)
        if tool is None:
            raise PlannerError(f"webqa needs the `{self.tool}` tool, which is not registered")
        if not tool.available:
            raise PlannerError(f"webqa needs the `{self.tool}` tool, which is unavailable: {tool.reason}")

    async def _act(
        self,
        ctx: RunContext,
        step: Step,
        calls: list[ToolCall],
        observations: list[Observation],
        action: str,
        **arguments: Any,
    ) -> Observation:
        call = ToolCall(name=f"{self.tool}.{action}", arguments=arguments)
        obs = await ctx.execute_one(call, step=step.index)
        calls.append(call)
        observations.append(obs)
        return obs

    async def _search(self, ctx: RunContext, question: str) -> list[dict[str, Any]]:
        step, started, calls, observations = ctx.new_step(), time.perf_counter(), list[ToolCall](), list[Observation]()
        obs = await self._act(ctx, step, calls, observations, "search", query=question)
        ctx.record(step, "search the web for the question", calls, observations, Usage(), started)
        if not obs.ok:
            raise PlannerError(f"webqa: the search failed: {obs.message}")
        results = (obs.content or {}).get("results") if isinstance(obs.content, dict) else None
        if not results:
            raise PlannerError(f"webqa: the search for {question!r} found nothing")
        return [r for r in results if isinstance(r, dict) and "index" in r]

    async def _read(self, ctx: RunContext, result: dict[str, Any], failures: list[str]) -> list[Candidate]:
        """Open one result and scroll through it, keeping its sentences."""
        step, started, calls, observations = ctx.new_step(), time.perf_counter(), list[ToolCall](), list[Observation]()
        obs = await self._act(ctx, step, calls, observations, "load", index=result["index"])
        if not obs.ok:
            failures.append(obs.message or obs.text)
        texts: list[str] = []
        view = obs.content if obs.ok and isinstance(obs.content, dict) else None
        url, title = result.get("url", ""), result.get("title", "")
        while view is not None:
            texts.append(str(view.get("text") or ""))
            url, title = view.get("url") or url, view.get("title") or title
            if view.get("at_end", True) or len(texts) >= self.windows_per_page:
                break
            obs = await self._act(ctx, step, calls, observations, "scroll_down")
            view = obs.content if obs.ok and isinstance(obs.content, dict) else None
        ctx.record(step, f"read result {result['index']}: {title or url}", calls, observations, Usage(), started)
        return [Candidate(s, result["index"], url, title) for s in sentences("\n".join(texts))]

    async def _select(
        self, ctx: RunContext, question: str, ranked: list[Candidate], results: list[dict[str, Any]]
    ) -> list[Candidate]:
        fallback = pick_by_bm25(ranked, self.quotes_per_page, self.max_quotes, self.min_ratio)
        if self.select == "bm25" or not ranked:
            return fallback
        step, started, usage = ctx.new_step(), time.perf_counter(), Usage()
        chosen: list[Candidate] = []
        floor = ranked[0].score * self.min_ratio
        for result in results:
            offered = [c for c in ranked if c.result == result["index"]][: self.candidates_per_page]
            for _ in range(self.quotes_per_page):
                if not offered or len(chosen) >= self.max_quotes:
                    break
                pick, spent = await self._choose(ctx, question, offered, step.index)
                usage = usage + spent
                if pick is None:
                    break
                if pick == -1:  # an unreadable reply: the page's best sentence, if it is good enough
                    if offered[0].score < floor:
                        break
                    pick = 0
                chosen.append(offered.pop(pick))
        thought = "chosen: " + " | ".join(c.text for c in chosen) if chosen else "no sentence chosen"
        ctx.record(step, thought, [], [], usage, started)
        return chosen or fallback

    async def _choose(
        self, ctx: RunContext, question: str, offered: list[Candidate], step: int
    ) -> tuple[int | None, Usage]:
        """The model picks one sentence (its 0-based position), None for `none`, -1 if unreadable."""
        choices = [str(i) for i in range(1, len(offered) + 1)] + ["none"]
        request = LLMRequest(
            messages=[
                Message(role="system", content=CHOOSE_SYSTEM),
                Message(role="user", content=choose_prompt(question, offered[0].title, offered[0].url, offered)),
            ],
            constraint=Constraint(kind="choice", choices=choices),
            sampling=Sampling(max_tokens=8),
        )
        response = await ctx.generate(request, step=step)
        reply = response.text.strip().lower()
        if reply.startswith("none"):
            return None, response.usage
        match = re.match(r"\D*(\d+)", reply)
        if match and 1 <= int(match.group(1)) <= len(offered):
            return int(match.group(1)) - 1, response.usage
        return -1, response.usage

    async def _quote(self, ctx: RunContext, chosen: list[Candidate]) -> list[dict[str, Any]]:
        """Quote the chosen sentences on their pages; the browser keeps each quote's URL."""
        step, started, calls, observations = ctx.new_step(), time.perf_counter(), list[ToolCall](), list[Observation]()
        by_result: dict[int, list[Candidate]] = {}
        for c in chosen:
            by_result.setdefault(c.result, []).append(c)
        for index, group in by_result.items():
            loaded = await self._act(ctx, step, calls, observations, "load", index=index)
            if not loaded.ok:
                continue
            for c in group:
                await self._act(ctx, step, calls, observations, "quote", text=c.text)
        done = await self._act(ctx, step, calls, observations, "finish")
        ctx.record(step, f"quote {len(chosen)} sentence(s)", calls, observations, Usage(), started)
        quotes = (done.content or {}).get("quotes") if done.ok and isinstance(done.content, dict) else None
        if not quotes:  # the browser refused the quotes: cite the sentences as read
            return [{"text": c.text, "url": c.url, "title": c.title} for c in chosen]
        return [q for q in quotes if isinstance(q, dict) and q.get("text") and q.get("url")]

    async def _answer(self, ctx: RunContext, question: str, quotes: list[dict[str, Any]]) -> str:
        step, started = ctx.new_step(), time.perf_counter()
        if not quotes:
            ctx.record(step, NO_FACTS, [], [], Usage(), started)
            return NO_FACTS
        request = LLMRequest(
            messages=[
                Message(role="system", content=ANSWER_SYSTEM),
                Message(role="user", content=answer_prompt(question, quotes)),
            ],
            sampling=Sampling(max_tokens=self.answer_max_tokens),
            tool_choice="none",
        )
        response = await ctx.generate(request, step=step.index)
        text, thought = response.text.strip(), response.text
        invented = ungrounded_numbers(text, quotes, question) if self.check_numbers else []
        if not text or invented:
            # a model that says nothing, or states figures no source gives, is replaced by the quotes
            thought += (
                f"\n[replaced by the quotes: numbers not in any quote: {', '.join(invented)}]" if invented else ""
            )
            text = extractive_answer(quotes)
        answer = f"{cite(text, quotes)}\n\nSources:\n{references(quotes)}"
        ctx.record(step, thought, [], [], response.usage, started)
        return answer
