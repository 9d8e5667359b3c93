"""The offline backend: a SQLite FTS5 index over a folder of documents, ranked by BM25.

An index is one SQLite file: a `meta` table (format, folder, base URL) and an FTS5 table of
(title, body, url, path). Titles weigh more than bodies in the ranking. Each document carries a
URL: `base_url` + its path relative to the folder when the folder is served by a web server,
else its file:// URL.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from toolkit.tools.search.documents import iter_documents
from toolkit.tools.search.results import BackendFailed, BackendNotConfigured, SearchResult, clean_snippet

INDEX_FORMAT = "toolkit-search-index"
INDEX_VERSION = "1"
TITLE_WEIGHT, BODY_WEIGHT = 4.0, 1.0
BUILD_HINT = "build one with `toolkit index build FOLDER --out INDEX` and set it as the search tool's `index` setting"


@dataclass
class IndexStats:
    path: Path
    documents: int
    folder: Path
    base_url: str | None
    seconds: float


def document_url(path: Path, folder: Path, base_url: str | None) -> str:
    if base_url:
        relative = path.resolve().relative_to(folder.resolve()).as_posix()
        return base_url.rstrip("/") + "/" + quote(relative)
    return path.resolve().as_uri()


def build_index(folder: str | Path, out: str | Path, base_url: str | None = None) -> IndexStats:
    """Index every HTML, Markdown and text file under `folder` into the SQLite file `out`.

    The index is written beside `out` and moved into place at the end, so a failed build never
    leaves a half-written index where a working one was.
    """
    started = time.perf_counter()
    folder, out = Path(folder).expanduser(), Path(out).expanduser()
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    if base_url and not re.match(r"^https?://", base_url):
        raise ValueError(f"--base-url must start with http:// or https://, got {base_url!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".building")
    tmp.unlink(missing_ok=True)
    count = 0
    with sqlite3.connect(tmp) as db:
        db.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)")
        db.execute(
            "CREATE VIRTUAL TABLE docs USING fts5(title, body, url UNINDEXED, path UNINDEXED,"
            " tokenize='porter unicode61 remove_diacritics 2')"
        )
        for doc in iter_documents(folder):
            url = document_url(doc.path, folder, base_url)
            db.execute(
                "INSERT INTO docs(title, body, url, path) VALUES (?, ?, ?, ?)",
                (doc.title, doc.text, url, str(doc.path.resolve())),
            )
            count += 1
        meta = {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "folder": str(folder.resolve()),
            "base_url": base_url or "",
            "documents": str(count),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        db.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", meta.items())
        db.execute("INSERT INTO docs(docs) VALUES ('optimize')")
    db.close()
    os.replace(tmp, out)
    return IndexStats(
        path=out, documents=count, folder=folder, base_url=base_url, seconds=time.perf_counter() - started
    )


def fts_query(query: str) -> str:
    """A user's words as an FTS5 query: each word quoted (so no word is read as an operator),
    any of them may match; BM25 ranks documents that match more of them, and rarer ones, higher."""
    words = re.findall(r"\w+", query.lower())
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(words))


class LocalIndex:
    """A read-only handle on an index file."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise BackendNotConfigured(f"local index {self.path} does not exist; {BUILD_HINT}")
        self.meta = self._read_meta()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{quote(str(self.path.resolve()))}?mode=ro", uri=True)

    def _read_meta(self) -> dict[str, str]:
        try:
            with self._connect() as db:
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise BackendNotConfigured(f"{self.path} is not a search index ({exc}); {BUILD_HINT}") from None
        if meta.get("format") != INDEX_FORMAT:
            raise BackendNotConfigured(f"{self.path} is not a search index; {BUILD_HINT}")
        return meta

    def search(self, query: str, k: int = 5) -> list[SearchResult]:
        match = fts_query(query)
        if not match:
            return []
        sql = (
            "SELECT title, url, snippet(docs, 1, '', '', '…', 40) FROM docs WHERE docs MATCH ?"
            f" ORDER BY bm25(docs, {TITLE_WEIGHT}, {BODY_WEIGHT}) LIMIT ?"
        )
        try:
            db = self._connect()
            try:
                rows = db.execute(sql, (match, k)).fetchall()
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise BackendFailed(f"local index {self.path}: {exc}") from None
        return [
            SearchResult(title=t, url=u, snippet=clean_snippet(s), rank=i) for i, (t, u, s) in enumerate(rows, start=1)
        ]


class LocalBackend:
    name = "local"

    def __init__(self, index_path: Path | None):
        if index_path is None:
            raise BackendNotConfigured(f"no local index is set; {BUILD_HINT}")
        self.index = LocalIndex(index_path)

    async def search(self, query: str, k: int) -> list[SearchResult]:
        return await asyncio.to_thread(self.index.search, query, k)
