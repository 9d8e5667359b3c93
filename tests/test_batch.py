"""The batch runner: task file errors, the atomic results file, resume after SIGKILL, retry of
failures, lazy bounded concurrency, memory at 1,000 tasks in flight, and the Ray executor."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from toolkit.cli.main import app
from toolkit.models.scripted import ScriptedBackend
from toolkit.registry import ToolRegistry
from toolkit.runtime.agent import Agent
from toolkit.runtime.results_file import ResultsFile, ResultsFileError, read_results
from toolkit.runtime.tasks_file import TaskFileError, read_tasks

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "tests" / "fixtures" / "batch"
runner = CliRunner()


def write_tasks(path: Path, n: int, prefix: str = "t") -> Path:
    path.write_text(
        "".join(json.dumps({"id": f"{prefix}{i}", "task": f"What is 2 + 3? (#{i})"}) + "\n" for i in range(n))
    )
    return path


def write_script(path: Path, delay: float = 0.0, tool: str = "calc.add", arguments: dict | None = None) -> Path:
    arguments = {"a": 2, "b": 3} if arguments is None else arguments
    script = [
        {"tool_calls": [{"name": tool, "arguments": arguments}], "delay_s": delay},
        {"text": "The answer is 5.", "delay_s": delay},
    ]
    path.write_text(yaml.safe_dump(script))
    return path


def batch_args(tasks: Path, out: Path, script: Path, *extra: str) -> list[str]:
    return [
        "batch",
        str(tasks),
        "--out",
        str(out),
        "--model",
        f"scripted:{script}",
        "--tools-path",
        str(TOOLS),
        "--no-progress",
        *extra,
    ]


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


# ---- task file ------------------------------------------------------------------------------


def test_bad_task_lines_are_named_and_nothing_runs(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        '{"id": "a", "task": "fine"}\n'
        "\n"
        "{not json\n"
        '{"id": "a", "task": "again"}\n'
        '{"task": "no id"}\n'
        '{"id": "b", "task": "x", "tool": ["calc"]}\n'
        '{"id": "c", "task": ""}\n'
        '["a list"]\n'
    )
    out = tmp_path / "out.jsonl"
    result = invoke(*batch_args(tasks, out, write_script(tmp_path / "s.yaml")))
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    for expected in (
        f"{tasks}:3: not valid JSON",
        f"{tasks}:4: duplicate id 'a' (first on line 1)",
        f'{tasks}:5: missing "id"',
        f"{tasks}:6: unknown field 'tool'",
        f'{tasks}:7: "task" must be a non-empty string',
        f"{tasks}:8: expected a JSON object",
    ):
        assert expected in text, (expected, result.output)
    assert ":1:" not in text and ":2:" not in text
    assert not out.exists() or out.read_text() == ""


def test_task_file_fields_ids_and_empty_file(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": 7, "task": "a", "tools": ["calc.add"], "max_steps": 3, "metadata": {"gold": 5}}\n')
    (task,) = read_tasks(path)
    assert (task.id, task.tools, task.max_steps, task.metadata) == ("7", ["calc.add"], 3, {"gold": 5})
    path.write_text('{"id": 7, "task": "a"}\n{"id": "7", "task": "b"}\n')
    with pytest.raises(TaskFileError, match="duplicate id '7'"):
        read_tasks(path)
    path.write_text("\n\n")
    with pytest.raises(TaskFileError, match="no tasks"):
        read_tasks(path)


def test_unknown_tool_and_bad_model_fail_before_any_task(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"id": "a", "task": "x", "tools": ["nosuchtool"]}\n')
    out = tmp_path / "out.jsonl"
    result = invoke(*batch_args(tasks, out, write_script(tmp_path / "s.yaml")))
    assert result.exit_code == 2 and "unknown tools: nosuchtool" in result.output
    write_tasks(tasks, 3)
    result = invoke(
        "batch", str(tasks), "--out", str(out), "--model", f"scripted:{tmp_path / 'missing.yaml'}", "--no-progress"
    )
    assert result.exit_code == 2 and "no such file" in result.output
    assert not out.exists() or out.read_text() == ""


# ---- results file ---------------------------------------------------------------------------


def test_results_file_cuts_a_torn_line_refuses_to_clobber_and_locks(tmp_path):
    path = tmp_path / "r.jsonl"
    with ResultsFile.open(path) as results:
        results.append({"id": "a", "status": "ok"})
        results.append({"id": "b", "status": "error", "error": "boom"})
        with pytest.raises(ResultsFileError, match="in use by another batch"):
            ResultsFile.open(path, resume=True)
    with path.open("ab") as f:
        f.write(b'{"id": "c", "status": "o')  # what a kill in the middle of a write leaves
    with pytest.raises(ResultsFileError, match="--resume"):
        ResultsFile.open(path)
    with ResultsFile.open(path, resume=True) as results:
        assert results.recorded == {"a": "ok", "b": "error"} and results.scan.torn_bytes == 24
        results.append({"id": "c", "status": "ok"})
        assert results.drop({"b"}) == 1
        results.append({"id": "b", "status": "ok"})
    assert [r["id"] for r in read_results(path)] == ["a", "c", "b"]
    path.write_text('{"id": "a"}\nnot json\n')
    with pytest.raises(ResultsFileError, match=":2: not a result line"):
        ResultsFile.open(path, resume=True)


def test_results_lines_carry_answers_failures_metadata_and_trace(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        '{"id": "ok1", "task": "add please", "metadata": {"gold": "5"}}\n'
        '{"id": "bad1", "task": "unmatched one"}\n'
        '{"id": "bad2", "task": "unmatched two"}\n'
    )
    script = tmp_path / "s.yaml"
    script.write_text(yaml.safe_dump({"scripts": [{"match": "^add", "responses": [{"text": "5"}]}]}))  # no default
    out, trace = tmp_path / "out.jsonl", tmp_path / "trace.jsonl"
    result = invoke(*batch_args(tasks, out, script, "--trace", str(trace)))
    assert result.exit_code == 1, result.output
    lines = {r["id"]: r for r in read_results(out)}
    assert (
        lines["ok1"]["status"] == "ok" and lines["ok1"]["answer"] == "5" and lines["ok1"]["metadata"] == {"gold": "5"}
    )
    assert lines["bad1"]["status"] == "error" and "no script matches" in lines["bad1"]["error"]
    summary = " ".join(result.output.split())
    assert "1 ok, 2 failed" in summary and "1 × error: scripted backend: no script matches" in summary
    assert "bad1" in summary and "bad2" in summary
    assert {json.loads(line)["task_id"] for line in trace.read_text().splitlines()} == {"ok1", "bad1", "bad2"}


def test_resume_skips_failures_and_retry_failed_reruns_them(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        "".join(json.dumps({"id": f"q{i}", "task": ("add" if i % 2 else "odd") + f" {i}"}) + "\n" for i in range(6))
    )
    script = tmp_path / "s.yaml"
    script.write_text(yaml.safe_dump({"scripts": [{"match": "^add", "responses": [{"text": "5"}]}]}))
    out = tmp_path / "out.jsonl"
    assert invoke(*batch_args(tasks, out, script)).exit_code == 1
    statuses = {r["id"]: r["status"] for r in read_results(out)}
    assert sorted(statuses.values()) == ["error"] * 3 + ["ok"] * 3
    again = invoke(*batch_args(tasks, out, script, "--resume"))
    assert again.exit_code == 1 and "0 to run, 6 already in" in " ".join(again.output.split())
    write_script(script)  # the model now answers everything
    retried = invoke(*batch_args(tasks, out, script, "--retry-failed"))
    assert retried.exit_code == 0, retried.output
    text = " ".join(retried.output.split())
    assert "3 to run" in text and "3 failed ones retried" in text
    lines = read_results(out)
    assert sorted(r["id"] for r in lines) == [f"q{i}" for i in range(6)]  # still one line per id
    assert all(r["status"] == "ok" for r in lines)


# ---- Python API -----------------------------------------------------------------------------


def test_run_many_yields_as_tasks_finish_and_draws_tasks_lazily():
    drawn = []

    def tasks():
        for i in range(300):
            drawn.append(i)
            yield (f"t{i}", f"task {i}")

    agent = Agent(
        model=ScriptedBackend([{"text": "done", "delay_s": 0.001}]), tools=ToolRegistry()
    )  # no tools: a short prompt
    results = agent.run_many(tasks(), concurrency=4)
    first = next(results)
    assert first.status == "ok" and first.answer == "done"
    assert len(drawn) <= 5  # 4 in flight + the one drawn when the first finished
    rest = list(results)
    assert len(rest) == 299 and len({r.task_id for r in rest} | {first.task_id}) == 300


async def test_bounded_as_completed_cancels_what_is_in_flight_on_error_and_on_close():
    import asyncio
    import contextlib

    from toolkit.runtime.concurrency import bounded_as_completed

    started: list[int] = []
    running: set[int] = set()

    async def work(i: int) -> int:
        started.append(i)
        running.add(i)
        try:
            await asyncio.sleep(10 if i >= 3 else 0.001 * i)  # 0, 1, 2 finish; the rest would hang
        finally:
            running.discard(i)
        if i == 2:
            raise ValueError("task 2 failed")
        return i

    got = []
    with pytest.raises(ValueError, match="task 2 failed"):
        async for value in bounded_as_completed(range(100), work, 3):
            got.append(value)
    assert got == [0, 1] and max(started) <= 5  # nothing drawn past the window
    assert not running  # those in flight were cancelled and awaited
    started.clear()
    async with contextlib.aclosing(bounded_as_completed(range(100), work, 3)) as results:
        async for value in results:  # noqa: B007 - the value is read after the loop
            break  # leaving the `aclosing` block closes the generator
    assert value == 0 and len(started) <= 4 and not running
    with pytest.raises(ValueError, match="at least 1"):
        async for _ in bounded_as_completed([1], work, 0):
            pass


# ---- kill and resume ------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_gives_each_task_exactly_once(tmp_path):
    n = 500
    tasks = write_tasks(tmp_path / "tasks.jsonl", n)
    script = write_script(tmp_path / "s.yaml", delay=0.01)
    out = tmp_path / "out.jsonl"
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    cmd = [sys.executable, "-m", "toolkit", *batch_args(tasks, out, script, "--concurrency", "8", "--resume")]
    kills = []
    for _ in range(3):
        before = len(read_results(out)) if out.exists() else 0
        target = before + rng.randint(1, (n - before) // 3)  # land somewhere in the next third
        proc = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while proc.poll() is None and (
                not out.exists() or out.stat().st_size == 0 or len(out.read_bytes().splitlines()) < target
            ):
                time.sleep(0.005)
            time.sleep(rng.random() * 0.05)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
        kills.append((target, proc.returncode, out.read_bytes().count(b"\n"), not out.read_bytes().endswith(b"\n")))
        assert proc.returncode == -signal.SIGKILL, (seed, kills, proc.stderr.read().decode())
        proc.stderr.close()
    done = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (seed, kills, done.stderr)
    ids = [r["id"] for r in read_results(out)]
    print(f"seed {seed}; kills (target, rc, lines at kill, torn tail): {kills}; final lines {len(ids)}")
    assert len(ids) == n and len(set(ids)) == n and set(ids) == {f"t{i}" for i in range(n)}, (seed, kills)
    assert all(0 < lines < n for _, _, lines, _ in kills), kills  # each kill landed mid-run


# ---- memory ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_thousand_concurrent_tasks_grow_resident_memory_by_less_than_300_mb(tmp_path):
    out = tmp_path / "out.jsonl"
    probe = subprocess.run(
        [sys.executable, "-m", "tests.fixtures.batch_memory", "1000", str(out)],
        env=subprocess_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr
    report = json.loads(probe.stdout.strip().splitlines()[-1])
    print("memory:", report)
    assert report["ok"] == 1000 and report["results_lines"] == 1020  # 20 warm-up tasks + 1,000
    assert report["peak_in_flight"] == 1000  # all of them at once
    assert report["growth_mb"] < 300


# ---- Ray ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ray_executor_runs_50_tasks_over_two_local_workers_into_one_file(tmp_path):
    """Also kills one worker mid-run (after both have delivered results): its tasks go to the other."""
    try:
        import ray  # noqa: F401 - imported here, not at collection: it is slow to import
    except Exception as exc:  # noqa: BLE001 - any import failure means no Ray here
        pytest.skip(f"ray is not importable here ({type(exc).__name__}: {exc}); pip install 'toolkit[ray]'")
    tasks = write_tasks(tmp_path / "tasks.jsonl", 50)
    script = write_script(tmp_path / "s.yaml", delay=0.05, tool="calc.pid", arguments={})
    out = tmp_path / "out.jsonl"
    out.write_text(
        json.dumps({"id": "t0", "status": "ok", "answer": "from an earlier run"}) + "\n"
    )  # resumed: not rerun
    cmd = [
        sys.executable,
        "-m",
        "toolkit",
        *batch_args(tasks, out, script, "--executor", "ray", "--workers", "2", "--concurrency", "4", "--resume"),
    ]
    proc = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def worker_pids() -> list[int]:
        return [o["content"] for r in read_results(out)[1:] for s in r["steps"] for o in s["observations"]]

    killed = None
    while proc.poll() is None and killed is None:
        pids = worker_pids()
        if len(set(pids)) == 2 and len(pids) >= 10:
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)  # a Ray worker process this test's batch started
        time.sleep(0.01)
    _, stderr = proc.communicate(timeout=400)
    assert proc.returncode == 0, stderr
    lines = read_results(out)
    ids = [r["id"] for r in lines]
    assert len(ids) == 50 and set(ids) == {f"t{i}" for i in range(50)}
    assert lines[0]["answer"] == "from an earlier run"
    pids = set(worker_pids())
    print("ray worker pids:", pids, "killed:", killed, "| stderr tail:", stderr.strip().splitlines()[-4:])
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes ran the tools


def test_resume_cuts_a_torn_last_line_and_reruns_that_task(tmp_path):
    tasks = write_tasks(tmp_path / "tasks.jsonl", 5)
    script = write_script(tmp_path / "s.yaml")
    out = tmp_path / "out.jsonl"
    assert invoke(*batch_args(tasks, out, script)).exit_code == 0
    lines = out.read_bytes().splitlines(keepends=True)
    torn_id = json.loads(lines[-1])["id"]
    out.write_bytes(b"".join(lines[:-1]) + lines[-1][:40])  # a kill in the middle of the last write
    result = invoke(*batch_args(tasks, out, script, "--resume"))
    assert result.exit_code == 0, result.output
    assert "cut a torn last line (40 bytes)" in " ".join(result.output.split())
    ids = [r["id"] for r in read_results(out)]
    assert sorted(ids) == sorted(f"t{i}" for i in range(5)) and ids[-1] == torn_id
