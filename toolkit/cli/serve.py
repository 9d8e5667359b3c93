"""`toolkit serve mcp`: serve the registry's available tools to MCP hosts, over stdio or HTTP."""

from __future__ import annotations

import asyncio
from typing import Literal, cast

import typer
from rich.console import Console

from toolkit.cli.approval import APPROVAL_RULE
from toolkit.config import load_config, tool_folders

app = typer.Typer(help="Serve the tools to other programs.", no_args_is_help=True)
err = Console(stderr=True, highlight=False)  # stdout is the protocol channel over stdio


@app.command("mcp")
def mcp(
    transport: str = typer.Option("stdio", "--transport", "-t", help="stdio | http (streamable HTTP)"),
    host: str = typer.Option("127.0.0.1", "--host", help="HTTP: the address to listen on."),
    port: int = typer.Option(8000, "--port", "-p", help="HTTP: the port to listen on."),
    path: str = typer.Option("/mcp", "--path", help="HTTP: the endpoint's path."),
    tools: str | None = typer.Option(
        None, "--tools", help="Comma-separated tools or actions to serve (default: all available)."
    ),
    tools_path: list[str] | None = typer.Option(
        None, "--tools-path", help="Extra folder or file of manifests (repeatable)."
    ),
    separator: str = typer.Option(
        ".", "--separator", help="Between tool and action in MCP names: `.` (tool.action) or `__` (tool__action)."
    ),
    approve: str = typer.Option(
        "auto",
        "--approve",
        help=f"{APPROVAL_RULE} Here the asking is the MCP host's: auto (default) passes every call to the host, "
        "whose user approves tool calls (MCP keeps a human in the loop; the readOnlyHint/destructiveHint we export "
        "tell it which) | deny (refuse them here).",
    ),
) -> None:
    """Serve the available tools as an MCP server; calls run through the toolkit executor."""
    from toolkit.registry import ToolRegistry
    from toolkit.runtime.executor import Executor
    from toolkit.runtime.policy import make_approver

    if transport not in ("stdio", "http"):
        err.print(f"--transport must be stdio or http, not {transport!r}")
        raise typer.Exit(2)
    if approve not in ("auto", "deny"):
        err.print("--approve must be auto or deny (there is no terminal to ask on: stdio carries the protocol)")
        raise typer.Exit(2)
    if separator not in (".", "__"):
        err.print("--separator must be `.` or `__`")
        raise typer.Exit(2)
    try:
        from toolkit.interop.mcp_server import exported_tools, serve
    except ImportError as exc:
        err.print(f"error: the `mcp` package is needed ({exc}); install toolkit[mcp]")
        raise typer.Exit(2) from None
    config = load_config()
    registry = ToolRegistry.default(tool_folders(config, tools_path), tool_settings=config.tools)
    names = [t.strip() for t in tools.split(",") if t.strip()] if tools else None
    exported = exported_tools(registry, names, separator)
    if not exported:
        err.print("error: no available tool to serve" + (f" among {tools}" if tools else ""))
        raise typer.Exit(2)
    where = f"http://{host}:{port}{path}" if transport == "http" else "stdio"
    err.print(f"serving {len(exported)} tool(s) over MCP on {where}: {', '.join(sorted(exported))}")
    executor = Executor(registry, approver=make_approver(approve, config.tool_overrides))  # type: ignore[arg-type]
    try:
        asyncio.run(
            serve(
                registry,
                executor,
                transport=cast(Literal["stdio", "http"], transport),  # checked above
                host=host,
                port=port,
                path=path,
                names=names,
                separator=separator,
            )
        )
    except KeyboardInterrupt:
        pass
