"""Worker processes for computations that must be killable (toolkit.tools.math.bounded_call)."""

from __future__ import annotations

import pytest

from toolkit.tools.math.bounded_call import CallTimeout, WorkerError, WorkerPool, call_in_process


def test_result_and_errors_cross_the_process_boundary():
    assert call_in_process("json:dumps", {"obj": [1, "a"]}, time_limit_s=30) == '[1, "a"]'
    with pytest.raises(WorkerError, match="JSONDecodeError"):
        call_in_process("json:loads", {"s": "{"}, time_limit_s=30)
    with pytest.raises(TypeError, match="missing 1 required"):  # builtin exception types come back as themselves
        call_in_process("json:dumps", {"nope": 1}, time_limit_s=30)


@pytest.mark.slow  # two cold workers (a sympy import each) on a busy machine
def test_a_call_past_its_limit_is_killed_and_the_pool_recovers():
    pool = WorkerPool(preload=("toolkit.tools.math",))
    slow = {"expression": "integrate(exp(sin(x)**3)*x**5*log(x)**2, x)"}  # sympy works on this for minutes
    try:
        with pytest.raises(CallTimeout, match="stopped after 1 s"):
            pool.call("toolkit.tools.math:calculate", slow, time_limit_s=1)
        assert pool.call("toolkit.tools.math:calculate", {"expression": "2**10"}, time_limit_s=30) == {
            "exact": "1024",
            "decimal": "1024",
        }
        worker_pids = {w.process.pid for w in pool._idle}
        assert len(worker_pids) == 1  # the killed worker is gone; its replacement answered
    finally:
        pool.close()
