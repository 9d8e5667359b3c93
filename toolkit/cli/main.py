"""`toolkit`: the command-line entry point. Each command group lives in its own module."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="toolkit",
    help="A tool-learning agent engine: run tasks with tools on a local or remote model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# (module, attribute, name): a group (typer.Typer) or a single command (function)
COMMANDS = [
    ("toolkit.cli.run", "run", "run"),
    ("toolkit.cli.tools", "app", "tools"),
    ("toolkit.cli.index", "app", "index"),
    ("toolkit.cli.batch", "batch", "batch"),
    ("toolkit.cli.serve", "app", "serve"),
    ("toolkit.cli.trace", "app", "trace"),
    ("toolkit.cli.eval", "app", "eval"),
]


def _register() -> None:
    for module_name, attr, name in COMMANDS:
        target = getattr(importlib.import_module(module_name), attr)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command(name=name)(target)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
