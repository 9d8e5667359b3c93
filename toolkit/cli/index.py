"""`toolkit index ...`: build and query the local search index (the search tool's offline backend)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(help="Build and query a local full-text search index (offline search).", no_args_is_help=True)


@app.command("build")
def build(
    folder: Path = typer.Argument(..., help="Folder of HTML, Markdown and text documents (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="The index file to write (SQLite)."),
    base_url: str | None = typer.Option(
        None, "--base-url", help="URL at which FOLDER is served (e.g. http://127.0.0.1:8000/); default: file:// URLs."
    ),
) -> None:
    """Index every document under FOLDER into OUT."""
    from toolkit.tools.search.local import build_index

    try:
        stats = build_index(folder, out, base_url=base_url)
    except (OSError, ValueError) as exc:
        typer.echo(f"cannot build the index: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"indexed {stats.documents} document(s) from {stats.folder} into {stats.path} in {stats.seconds:.2f} s")
    if stats.documents == 0:
        typer.echo("warning: no HTML, Markdown or text documents were found", err=True)
    typer.echo(f"use it: set `tools: {{search: {{index: {stats.path.resolve()}}}}}` in your toolkit config")


@app.command("search")
def search(
    index: Path = typer.Argument(..., help="An index file built by `toolkit index build`."),
    query: str = typer.Argument(..., help="The words to search for."),
    k: int = typer.Option(5, "-k", min=1, help="How many results."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Query an index, as the search tool would."""
    from toolkit.tools.search.local import LocalIndex
    from toolkit.tools.search.results import SearchError

    try:
        results = LocalIndex(index).search(query, k)
    except SearchError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps([r.model_dump() for r in results], indent=2, ensure_ascii=False))
        return
    for r in results:
        typer.echo(f"{r.rank}. {r.title}  <{r.url}>\n   {r.snippet}")
    if not results:
        typer.echo("no match")
