"""With the embedded model, the DAG plan (decoded under the plan's JSON schema) parses on every
run, whatever its quality. The full 20-task sample: `python benchmarks/dag_plan_parse.py`."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = [
    pytest.mark.llama,
    pytest.mark.slow,
    pytest.mark.timeout(1800),
]  # ~1 min on an idle 2-core machine; much more on a busy one

TASKS = [
    "What is 17 times 23?",
    "Add 1234 and 5678, then divide the result by 2.",
    "What is 15% of 240?",
    "Is 97 a prime number?",
    "What is 6 squared plus 8 squared?",
]
JSON_ERRORS = ("not valid JSON", "JSON is incomplete", 'must be an object with a "steps" list')


@pytest.fixture(scope="session")
def embedded_model():
    pytest.importorskip("llama_cpp")
    from toolkit.models import BackendError
    from toolkit.models.llamacpp.files import default_model_path

    try:
        return f"llamacpp:{default_model_path()}"
    except (BackendError, ImportError) as exc:
        pytest.skip(f"the embedded model is not available: {exc}")


def test_the_embedded_models_plans_parse_on_every_run(embedded_model):
    from toolkit.runtime.agent import Agent

    agent = Agent(
        model=embedded_model,
        tool_names=["math.calculate"],
        planner="dag",
        planner_options={"max_replans": 0, "join_max_tokens": 96},
    )

    async def run_all():
        try:
            return [await agent.arun(task) for task in TASKS]  # one model, its KV cache shared
        finally:
            await agent.aclose()

    for result in asyncio.run(run_all()):
        plans = [e for e in result.trace if e.kind == "plan" and (e.text or "").startswith("dag plan:")]
        assert plans, (result.task, result.status, result.error)
        for plan in plans:
            assert not any(marker in plan.text for marker in JSON_ERRORS), (result.task, plan.text)
            assert all(step["action"] == "math.calculate" for step in plan.plan)  # the schema's enum held
