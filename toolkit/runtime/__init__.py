"""The runtime: executor, agent loop, batch runner, traces, sandbox and model backends."""
