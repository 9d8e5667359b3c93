"""Issue #23, class 8: one bad input must not stop a batch, or the CLI, with a traceback.

The real CLI in a subprocess (`python -m toolkit.cli.main`), as a user runs it. The model is a
scripted one (`scripted:FILE`: it replays the file's responses, standing in for a model that
emits them); tools are real: the built-in math tool, and an http tool against a real server on
127.0.0.1. The full-disk and read-only cases mount a small tmpfs in a private mount namespace of
the test's own (root and util-linux `unshare` needed), so the host's mounts are untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MARKUP = "[/b] [bold]not a tag[/bold] [/]"


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "toolkit.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
    )


def assert_no_traceback(done: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in done.stderr and "Error:" not in done.stderr.split("\n")[0][:6], done.stderr[-3000:]


def assert_bad_input(done: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2 and one line on stderr (saying what is wrong), never a traceback."""
    assert_no_traceback(done)
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- a task that fails, fails alone; --resume continues ------------------------------------


def poisoned_script(tmp_path: Path, response: dict) -> Path:
    """Every task gets a plain answer, but the task that says "poison" gets `response` first."""
    script = {
        "mode": "turn",
        "scripts": [{"match": "poison", "responses": [response, {"text": "done"}]}],
        "default": [{"text": "The answer is 5."}],
    }
    path = tmp_path / "script.json"
    path.write_text(json.dumps(script))  # json.dumps writes a lone surrogate as the escape \ud800
    return path


def run_batch(tmp_path: Path, script: Path, *extra: str, tasks: int = 6, poison_at: int = 1):
    rows = [{"id": f"t{i}", "task": "poison me" if i == poison_at else f"fine {i}"} for i in range(tasks)]
    task_file = write_jsonl(tmp_path / "tasks.jsonl", rows)
    out = tmp_path / "out.jsonl"
    args = ["batch", str(task_file), "--out", str(out), "--model", f"scripted:{script}", "--no-progress"]
    return cli(*args, "--concurrency", "1", *extra), out, args


def test_a_lone_surrogate_in_a_models_call_arguments_fails_alone_and_resume_continues(tmp_path):
    """The red team's case: the whole batch aborted on writing that task's result, and so did
    every --resume, since the task ran again each time."""
    script = poisoned_script(
        tmp_path, {"tool_calls": [{"name": "math.calculate", "arguments": {"expression": "2+\ud800"}}]}
    )
    first, out, args = run_batch(tmp_path, script)
    assert_no_traceback(first)
    lines = results(out)
    assert sorted(r["id"] for r in lines) == [f"t{i}" for i in range(6)], first.stderr
    assert [r["status"] for r in lines if r["id"] != "t1"] == ["ok"] * 5
    again = cli(*args, "--concurrency", "1", "--resume")
    assert_no_traceback(again)
    assert "0 to run" in again.stderr
    assert len(results(out)) == 6


def test_a_lone_surrogate_in_a_task_lines_metadata_fails_nothing_and_resume_continues(tmp_path):
    """A variant: the surrogate comes from the task file itself (metadata is copied to the
    result line as it is); the batch aborted on that task's line, and every --resume with it."""
    rows = [
        {"id": f"t{i}", "task": f"fine {i}", "metadata": {"note": "half a pair: \ud800" if i == 2 else "ok"}}
        for i in range(5)
    ]
    tasks = write_jsonl(tmp_path / "tasks.jsonl", rows)
    script = write_jsonl(tmp_path / "script.jsonl", [{"text": "The answer is 5."}])
    out = tmp_path / "out.jsonl"
    args = ["batch", str(tasks), "--out", str(out), "--model", f"scripted:{script}", "--no-progress", "-c", "1"]
    first = cli(*args)
    assert_no_traceback(first)
    assert first.returncode == 0, first.stderr
    lines = results(out)
    assert sorted(r["id"] for r in lines) == [f"t{i}" for i in range(5)]
    assert next(r for r in lines if r["id"] == "t2")["metadata"] == {"note": "half a pair: \ud800"}  # kept as it was
    again = cli(*args, "--resume")
    assert_no_traceback(again)
    assert again.returncode == 0 and "0 to run" in again.stderr


def test_a_failure_reason_with_markup_is_printed_as_it_is(tmp_path):
    """A variant: a task fails with a reason that holds Rich markup (the task's own text, quoted
    by the error); the batch's summary printed it as markup and crashed at the very end."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"scripts": [{"match": "fine", "responses": [{"text": "The answer is 5."}]}]}))
    rows = [{"id": "t0", "task": "fine"}, {"id": "t1", "task": f"poison {MARKUP}"}, {"id": "t2", "task": "fine"}]
    tasks = write_jsonl(tmp_path / "tasks.jsonl", rows)
    out = tmp_path / "out.jsonl"
    done = cli("batch", str(tasks), "--out", str(out), "--model", f"scripted:{script}", "--no-progress")
    assert_no_traceback(done)
    assert done.returncode == 1  # one task failed
    assert sorted(r["status"] for r in results(out)) == ["error", "ok", "ok"]
    assert MARKUP in done.stderr


@pytest.mark.parametrize(
    "line",
    [
        '{"id": "b", "task": "deep", "metadata": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}",
        '{"id": ' + "9" * 5000 + ', "task": "a 5,000-digit id"}',
        '{"id": "c", "task": "deep but parseable", "metadata": ' + '{"a": ' * 900 + "1" + "}" * 900 + "}",
        '{"id": "' + "x" * 5000 + '", "task": "a 5,000-character id"}',
    ],
    ids=["nested-5000", "id-5000-digits", "nested-900", "id-5000-chars"],
)
def test_a_pathological_task_line_is_named_not_a_traceback(tmp_path, line):
    """The red team's cases (a deeply nested line, a 5,000-digit id) and variants: the task file
    is checked before anything runs, so the bad line is named, exit 2, nothing runs."""
    tasks = write_jsonl(tmp_path / "tasks.jsonl", [{"id": "a", "task": "fine"}, line, {"id": "z", "task": "fine"}])
    out = tmp_path / "out.jsonl"
    script = write_jsonl(tmp_path / "script.jsonl", [{"text": "The answer is 5."}])
    done = cli("batch", str(tasks), "--out", str(out), "--model", f"scripted:{script}", "--no-progress")
    assert_bad_input(done, f"{tasks}:2:")
    assert not out.exists() or results(out) == []


# ---- the disk: full, read-only --------------------------------------------------------------


def in_mount_namespace(tmp_path: Path, script: str) -> subprocess.CompletedProcess:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and util-linux unshare (a private mount namespace for a small tmpfs)")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PY": sys.executable, "TMP": str(tmp_path)}
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )


def batch_tasks(tmp_path: Path, n: int) -> tuple[Path, Path]:
    tasks = write_jsonl(tmp_path / "tasks.jsonl", [{"id": f"t{i}", "task": f"task {i}"} for i in range(n)])
    script = write_jsonl(tmp_path / "script.jsonl", [{"text": "The answer is 5. " + "x" * 400}])
    return tasks, script


def test_a_full_disk_stops_the_batch_cleanly_and_resume_continues(tmp_path):
    """The red team's case: results on a disk that fills up (a 16 KB tmpfs) mid-run; then room is
    made and --resume finishes: every task exactly once."""
    tasks, script = batch_tasks(tmp_path, 60)
    (tmp_path / "disk").mkdir()
    done = in_mount_namespace(
        tmp_path,
        f"""
        mount -t tmpfs -o size=16k none "$TMP/disk"
        "$PY" -m toolkit.cli.main batch {tasks} --out "$TMP/disk/out.jsonl" --model scripted:{script} --no-progress -c 1 2> "$TMP/first.err"
        echo "first=$?"
        mount -o remount,size=4m "$TMP/disk"
        "$PY" -m toolkit.cli.main batch {tasks} --out "$TMP/disk/out.jsonl" --model scripted:{script} --no-progress -c 1 --resume 2> "$TMP/second.err"
        echo "second=$?"
        cat "$TMP/disk/out.jsonl" > "$TMP/out.jsonl"
        """,
    )
    first_err, second_err = (tmp_path / "first.err").read_text(), (tmp_path / "second.err").read_text()
    assert "first=1" in done.stdout, (done.stdout, first_err)
    assert "Traceback" not in first_err and "No space left on device" in first_err and "--resume" in first_err
    assert "second=0" in done.stdout, second_err
    ids = [r["id"] for r in results(tmp_path / "out.jsonl")]
    assert sorted(ids) == sorted(f"t{i}" for i in range(60)) and len(ids) == 60


def test_a_read_only_trace_folder_is_bad_input(tmp_path):
    """The red team's case: --trace in a read-only folder (a read-only mount: root writes through
    file modes) ended in a traceback."""
    tasks, script = batch_tasks(tmp_path, 3)
    (tmp_path / "ro").mkdir()
    done = in_mount_namespace(
        tmp_path,
        f"""
        mount -t tmpfs -o ro,size=1m none "$TMP/ro"
        "$PY" -m toolkit.cli.main batch {tasks} --out "$TMP/out.jsonl" --model scripted:{script} --no-progress --trace "$TMP/ro/trace.jsonl" 2> "$TMP/err"
        echo "exit=$?"
        """,
    )
    err = (tmp_path / "err").read_text()
    assert "exit=2" in done.stdout, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "trace" in err, err


def test_a_trace_on_a_full_disk_stops_the_trace_not_the_batch(tmp_path):
    """A variant: the trace (a by-product) fills its disk; every result is still written."""
    tasks, script = batch_tasks(tmp_path, 40)
    (tmp_path / "small").mkdir()
    done = in_mount_namespace(
        tmp_path,
        f"""
        mount -t tmpfs -o size=8k none "$TMP/small"
        "$PY" -m toolkit.cli.main batch {tasks} --out "$TMP/out.jsonl" --model scripted:{script} --no-progress -c 1 --trace "$TMP/small/trace.jsonl" 2> "$TMP/err"
        echo "exit=$?"
        """,
    )
    err = (tmp_path / "err").read_text()
    assert "exit=0" in done.stdout, err
    assert "Traceback" not in err and "trace" in err and "No space left on device" in err
    assert len(results(tmp_path / "out.jsonl")) == 40


# ---- toolkit run: the live view, bad options -----------------------------------------------


def test_markup_in_model_text_and_tool_output_is_shown_not_parsed(tmp_path):
    """The red team's case: `[/b]` in the model's text or a tool's output crashed `toolkit run`'s
    live view (Rich read it as a closing tag)."""
    script = write_jsonl(
        tmp_path / "script.jsonl",
        [
            {
                "text": f"thinking {MARKUP}",
                "tool_calls": [{"name": "math.calculate", "arguments": {"expression": MARKUP}}],
            },
            {"text": f"The answer is {MARKUP}"},
        ],
    )
    done = cli("run", "What is it?", "--model", f"scripted:{script}", "--approve", "auto")
    assert_no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"The answer is {MARKUP}"
    assert done.stderr.count(MARKUP) >= 2  # the model's text and the call, shown literally


def test_a_lone_surrogate_in_a_call_prints_in_every_output_mode(tmp_path):
    """A variant for `toolkit run`: a call whose arguments hold a lone surrogate, shown live, as
    --json (the whole result, steps included) and written to --trace."""
    script = write_jsonl(
        tmp_path / "script.jsonl",
        [
            {"tool_calls": [{"name": "math.calculate", "arguments": {"expression": "2+\ud800"}}]},
            {"text": "The answer is 4."},
        ],
    )
    for extra in ([], ["--json"], ["--trace", str(tmp_path / "trace.jsonl")]):
        done = cli("run", "What is it?", "--model", f"scripted:{script}", *extra)
        assert_no_traceback(done)
        assert done.returncode == 0, (extra, done.stderr)
        if extra == ["--json"]:
            steps = json.loads(done.stdout)["steps"]
            assert steps[0]["calls"][0]["arguments"] == {"expression": "2+\ud800"}  # kept, escaped in the JSON
        else:
            assert done.stdout.strip() == "The answer is 4.", extra
    assert "\\ud800" in (tmp_path / "trace.jsonl").read_text()


@pytest.mark.parametrize(
    "args, words",
    [
        (["run", "What is 2+2?", "--model", ""], ["--model"]),
        (["run", ""], ["task"]),
        (["run", "   "], ["task"]),
        (["run", "What is 2+2?", "--max-steps", "-5"], ["--max-steps"]),
        (["run", "What is 2+2?", "--max-steps", "0"], ["--max-steps"]),
        (["run", "What is 2+2?", "--tools", "math,no_such_tool"], ["no_such_tool"]),
        (["run", "What is 2+2?", "--tools", ","], ["--tools"]),
        (["run", "What is 2+2?", "--planner", f"no-such-planner{MARKUP}"], ["planner"]),
        (["batch", "TASKS", "--out", "OUT", "--model", ""], ["--model"]),
        (["batch", "TASKS", "--out", "OUT", "--max-steps", "-5"], ["--max-steps"]),
    ],
    ids=[
        "empty-model",
        "empty-task",
        "blank-task",
        "negative-max-steps",
        "zero-max-steps",
        "unknown-tool",
        "empty-tools",
        "unknown-planner",
        "batch-empty-model",
        "batch-negative-max-steps",
    ],
)
def test_bad_cli_input_is_one_line_and_exit_2(tmp_path, args, words):
    """The red team's cases (`--model ""`, `run ""`, `--max-steps -5`, unknown `--tools`) and
    variants: one line saying what is wrong, exit 2; nothing runs."""
    tasks = write_jsonl(tmp_path / "tasks.jsonl", [{"id": "a", "task": "fine"}])
    script = write_jsonl(tmp_path / "script.jsonl", [{"text": "The answer is 4."}])
    args = [str(tasks) if a == "TASKS" else str(tmp_path / "out.jsonl") if a == "OUT" else a for a in args]
    if "--model" not in args:  # a scripted model: input that slipped through would run, not load the embedded one
        args += ["--model", f"scripted:{script}"]
    # refused at once: the timeout only keeps input that is accepted (the empty --model loaded the
    # embedded model) from running to its end
    try:
        done = cli(*args, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{args} was accepted and ran")
    assert_bad_input(done, *words)
