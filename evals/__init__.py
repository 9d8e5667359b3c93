"""Harnesses that score the engine on public suites (BFCL, NESTFUL, ParallelQA, GSM8K)."""
