"""`toolkit eval ...` end to end on a scripted backend (--limit 3), data read via the evaldata fixture."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from typer.testing import CliRunner

from evals.bfcl import CATEGORIES, load_category
from evals.bfcl.data import task_text
from evals.bfcl.gold import gold_calls, perturb
from evals.bfcl.run import DEFAULT_CATEGORIES
from evals.nestful import load_nestful
from evals.sampling import Selection
from toolkit.cli.main import app

runner = CliRunner()


def bfcl_script(tmp_path, evaldata, perturbation: str | None = None, categories=DEFAULT_CATEGORIES, questions=None):
    """A scripted model that answers each of the first 3 questions per category (or `questions`)
    with its gold calls (or a perturbed copy of them)."""
    scripts = []
    for category in categories:
        for question in questions or load_category(category, evaldata, 3):
            calls = gold_calls(question) if perturbation is None else perturb(question, perturbation) or []
            tool_calls = [{"name": name, "arguments": args} for call in calls for name, args in call.items()]
            scripts.append(
                {
                    "match": "^" + re.escape(task_text(question)) + "$",
                    "responses": [{"tool_calls": tool_calls, "text": "" if tool_calls else "No function fits."}],
                }
            )
    path = tmp_path / "bfcl.yaml"
    path.write_text(yaml.safe_dump({"scripts": scripts}), encoding="utf-8")
    return path


def run(*args: str):
    result = runner.invoke(app, ["eval", *args])
    return result


@pytest.mark.parametrize("planner", ["react", "dag"])
def test_bfcl_the_agents_dry_run_calls_are_its_answer(tmp_path, evaldata, planner):
    """The agent answers through its planner in a dry run; whatever planner, the gold calls score."""
    script = bfcl_script(tmp_path, evaldata)
    result = run(
        "bfcl", "--limit", "3", "--model", f"scripted:{script}", "--data-dir", str(evaldata), "--json", "-p", planner
    )
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r["values"]["toolkit agent"] for r in json.loads(result.stdout)["rows"]}
    assert rows["overall"] == 1.0
    # the run stopped at the calls; where there are none (6 irrelevance questions of 24), react has
    # answered in the same turn, the dag asks its joiner for the answer after an empty plan
    assert rows["model calls per question"] == (1.0 if planner == "react" else 30 / 24)


def test_bfcl_gold_answers_score_100_percent_with_the_baseline_beside(tmp_path, evaldata):
    script = bfcl_script(tmp_path, evaldata)
    out = tmp_path / "report.json"
    result = run(
        "bfcl", "--limit", "3", "--model", f"scripted:{script}", "--data-dir", str(evaldata), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert "| simple_python | 3 | 100.0% | 100.0% |" in result.stdout
    assert "raw prompt (no constraint)" in result.stdout  # the baseline's column
    assert "build_agent(model, functions=<the question's functions>, planner='react'" in result.stdout
    report = json.loads(out.read_text())
    assert report["systems"] == ["toolkit agent", "raw prompt (no constraint)"]
    rows = {r["name"]: r for r in report["rows"]}
    assert set(DEFAULT_CATEGORIES) <= set(rows)
    assert rows["overall"]["values"]["toolkit agent"] == 1.0
    assert rows["unparseable outputs"]["values"]["toolkit agent"] == 0.0
    assert len(report["items"]) == 2 * len(DEFAULT_CATEGORIES) * 3
    assert report["ids"] == [q.id for c in DEFAULT_CATEGORIES for q in load_category(c, evaldata, 3)]
    assert out.with_suffix(".md").read_text().startswith("### BFCL")
    assert "Ids scored (24): simple_python_0, simple_python_1" in out.with_suffix(".md").read_text()


def test_bfcl_a_seeded_sample_draws_the_same_questions_from_the_whole_category(tmp_path, evaldata):
    questions = Selection(sample=3, seed=7).apply(load_category("multiple", evaldata), lambda q: q.id)
    script = bfcl_script(tmp_path, evaldata, categories=["multiple"], questions=questions)
    args = ["bfcl", "-c", "multiple", "--sample", "3", "--seed", "7", "--data-dir", str(evaldata), "--json"]
    first = run(*args, "--model", f"scripted:{script}")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert {r["name"]: r["values"]["toolkit agent"] for r in report["rows"]}["multiple"] == 1.0
    assert report["ids"] == [q.id for q in questions] and report["ids"] != ["multiple_0", "multiple_1", "multiple_2"]
    assert "seeded random sample of 3 (seed 7)" in " ".join(report["notes"])
    by_ids = run(
        "bfcl",
        "-c",
        "multiple,simple_python",
        "--ids",
        ",".join(report["ids"][:2]),
        "--data-dir",
        str(evaldata),
        "--json",
        "--model",
        f"scripted:{script}",
    )
    assert by_ids.exit_code == 0, by_ids.output
    assert json.loads(by_ids.stdout)["ids"] == report["ids"][:2]


def test_bfcl_bad_item_options_are_one_line_and_exit_2(tmp_path, evaldata):
    common = ["--data-dir", str(evaldata), "--model", "scripted:/x.yaml", "-c", "multiple"]
    unknown = run("bfcl", *common, "--ids", "multiple_0,nope_9")
    assert unknown.exit_code == 2 and "unknown id(s)" in unknown.output and "nope_9" in unknown.output
    zero = run("bfcl", *common, "--sample", "0")
    assert zero.exit_code == 2 and "--sample" in zero.output and "Traceback" not in zero.output
    planner = run("bfcl", *common, "-o", "no_such_option=1")
    assert planner.exit_code == 2 and "no option(s) no_such_option" in planner.output


def test_bfcl_perturbed_answers_score_0_percent_except_irrelevance(tmp_path, evaldata):
    script = bfcl_script(tmp_path, evaldata, perturbation="wrong_value")
    result = run(
        "bfcl",
        "--limit",
        "3",
        "--model",
        f"scripted:{script}",
        "--data-dir",
        str(evaldata),
        "--json",
        "--categories",
        "simple_python,multiple,parallel,parallel_multiple",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert all(row["values"]["toolkit agent"] == 0.0 for row in report["rows"] if row["name"] in CATEGORIES)


def test_bfcl_errors_are_clear(tmp_path, evaldata):
    result = run("bfcl", "--limit", "1", "--model", "scripted:/nonexistent.yaml", "--data-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "BFCL data not found" in result.output
    result = run("bfcl", "--categories", "java", "--data-dir", str(evaldata), "--model", "scripted:/x.yaml")
    assert result.exit_code == 2 and "unsupported BFCL categories" in result.output
    assert "live_relevance" in result.output  # the message lists what is supported


def test_nestful_gold_sequences_score_full_marks(tmp_path, evaldata):
    scripts = [
        {
            "match": "^" + re.escape(item["input"]) + "$",
            "responses": [{"tool_calls": [{"name": c["name"], "arguments": c["arguments"]} for c in item["gold"]]}],
        }
        for item in load_nestful(evaldata, 3)
    ]
    script = tmp_path / "nestful.yaml"
    script.write_text(yaml.safe_dump({"scripts": scripts}), encoding="utf-8")
    result = run("nestful", "--limit", "3", "--model", f"scripted:{script}", "--data-dir", str(evaldata), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = {r["name"]: r["values"] for r in report["rows"]}
    assert report["systems"] == ["toolkit agent (dag)", "toolkit agent (react)", "raw prompt (no constraint)"]
    assert rows["full-sequence accuracy"]["toolkit agent (dag)"] == 1.0
    assert rows["full-sequence accuracy"]["toolkit agent (react)"] == 1.0  # a scripted turn: all the calls
    assert rows["full-sequence accuracy"]["raw prompt (no constraint)"] == 1.0
    assert report["ids"] == ["executable_0", "glaive_0", "sgd_0"]


def test_nestful_the_dag_plans_references_become_nestful_variables(tmp_path, evaldata):
    """The agent's dry run keeps a dag step's `$1.field` as written; the eval rewrites it to the
    position of step 1's call (`$var1.field$`), so a plan with the gold's shape scores full marks."""
    item = next(i for i in load_nestful(evaldata, 60) if len(i["gold"]) >= 2 and "$var1" in json.dumps(i["gold"]))
    id_of = {f"var{k}": k for k in range(1, len(item["gold"]) + 1)}

    def to_plan_value(value):
        return (
            re.sub(r"\$(var\d+)((?:\.[^$]*)?)\$", lambda m: f"${id_of[m[1]]}{m[2]}", value)
            if isinstance(value, str)
            else value
        )

    steps = [
        {
            "id": k,
            "action": call["name"],
            "arguments": {a: to_plan_value(v) for a, v in call["arguments"].items()},
            "depends_on": [],
        }
        for k, call in enumerate(item["gold"], start=1)
    ]
    script = tmp_path / "plan.yaml"
    script.write_text(
        yaml.safe_dump(
            {
                "scripts": [
                    {
                        "match": "^" + re.escape(item["input"]) + "$",
                        "responses": [{"text": json.dumps({"steps": steps})}],
                    }
                ],
                "default": [{"text": "no"}],
            }
        ),
        encoding="utf-8",
    )
    out = tmp_path / "n.json"
    result = run(
        "nestful", "--ids", item["id"], "--model", f"scripted:{script}", "--data-dir", str(evaldata), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    engine = next(i for i in json.loads(out.read_text())["items"] if i["system"] == "toolkit agent (dag)")
    assert engine["full_sequence"] == 1.0, (engine["calls"], item["gold"])


def test_gsm8k_scores_the_final_number_engine_and_baseline(tmp_path, evaldata):
    script = tmp_path / "gsm8k.yaml"
    script.write_text(
        yaml.safe_dump(
            {
                "scripts": [
                    {
                        "match": "Janet",
                        "responses": [
                            {"tool_calls": [{"name": "math.calculate", "arguments": {"expression": "(16-3-4)*2"}}]},
                            {"text": "She makes 18 dollars. The answer is 18."},
                        ],
                    }
                ],
                "default": [{"text": "The answer is 1,000,000."}],
            }
        ),
        encoding="utf-8",
    )
    result = run("gsm8k", "--limit", "3", "--model", f"scripted:{script}", "--data-dir", str(evaldata), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    accuracy = report["rows"][0]["values"]
    assert accuracy["toolkit agent (react + math.calculate)"] == pytest.approx(1 / 3)
    assert report["ids"] == ["gsm8k_0", "gsm8k_1", "gsm8k_2"]
    assert accuracy["raw prompt, no tools"] == 0.0  # the baseline got a tool call back, with no number


def test_parallelqa_runs_dag_and_react_against_the_local_index(tmp_path, evaldata):
    script = tmp_path / "pqa.yaml"
    script.write_text(
        yaml.safe_dump(
            {
                "scripts": [
                    {
                        "match": "Mariana Trench was 20% shallower",
                        "responses": [
                            {
                                "tool_calls": [
                                    {"name": "search", "arguments": {"query": "Mariana Trench depth"}},
                                    {"name": "search", "arguments": {"query": "Puerto Rico Trench depth"}},
                                ]
                            },
                            {"text": "Mariana Trench"},
                        ],
                    }
                ],
                "default": [{"text": "I do not know."}],
            }
        ),
        encoding="utf-8",
    )
    out = tmp_path / "pqa.json"
    result = run(
        "parallelqa", "--limit", "3", "--model", f"scripted:{script}", "--data-dir", str(evaldata), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["systems"] == ["dag planner", "react planner"]
    first = [i for i in report["items"] if i["id"] == "1"]
    assert all(i["correct"] and len(i["calls"]) == 2 for i in first)
    assert "fixture corpus" in result.stdout


@pytest.mark.llama
def test_bfcl_on_the_embedded_model_one_question(tmp_path, evaldata):
    """The real thing, kept tiny: one simple_python question through the embedded GGUF model and
    through llama-cpp-python's chatml-function-calling baseline on the same file."""
    pytest.importorskip("llama_cpp")
    out = tmp_path / "real.json"
    result = run(
        "bfcl", "--categories", "simple_python", "--limit", "1", "--data-dir", str(evaldata), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["systems"] == ["toolkit agent", "llama-cpp chatml-function-calling"]
    engine = [i for i in report["items"] if i["system"] == "toolkit agent"]
    assert len(engine) == 1 and not engine[0]["unparseable"]
    assert all(name == "calculate_triangle_area" for call in engine[0]["calls"] for name in call)


@pytest.mark.llama
def test_the_chatml_baseline_is_cut_off_at_its_time_and_token_limits():
    """llama-cpp-python has no timeout (and ignores max_tokens when writing calls); the baseline
    stops a request past its limits, and the question is scored as a failure instead of stalling
    the run."""
    pytest.importorskip("llama_cpp")
    import asyncio

    from evals.baselines import ChatmlFunctionCallingBaseline
    from toolkit.models.llamacpp.files import default_model_path
    from toolkit.types import LLMRequest, Message, Sampling, ToolSpec

    tool = ToolSpec(
        name="area",
        description="Area of a circle.",
        parameters={"type": "object", "properties": {"r": {"type": "number"}}},
    )
    request = LLMRequest(
        messages=[Message(role="user", content="Area of a circle of radius 2?")],
        tools=[tool],
        sampling=Sampling(temperature=0.0, max_tokens=64),
    )
    baseline = ChatmlFunctionCallingBaseline(str(default_model_path()), n_ctx=1024, timeout_s=0.0)
    try:
        cut = asyncio.run(baseline.generate(request))
        baseline.timeout_s = 600.0
        whole = asyncio.run(baseline.generate(request))  # the Llama object still works after a cut
        baseline.token_factor = 0
        capped = asyncio.run(baseline.generate(request))
    finally:
        asyncio.run(baseline.aclose())
    assert cut.finish_reason == "error" and "time limit" in (cut.parse_error or "")
    assert whole.finish_reason != "error", whole.parse_error
    assert capped.finish_reason == "error" and "token limit" in (capped.parse_error or "")
