"""Reading a folder of documents (HTML, Markdown, plain text) into title + text for indexing.

HTML is parsed with the standard library so that the offline index needs no extra package:
scripts, styles and other non-content elements are dropped, block elements end lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
TEXT_SUFFIXES = {".txt", ".text", ".rst"}
DOCUMENT_SUFFIXES = HTML_SUFFIXES | MARKDOWN_SUFFIXES | TEXT_SUFFIXES
MAX_FILE_BYTES = 20_000_000  # larger files are skipped: they are rarely documents

_SKIPPED_TAGS = {"script", "style", "noscript", "template", "svg", "head", "iframe", "object"}
_BLOCK_TAGS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "nav",
    "aside",
    "li",
    "ul",
    "ol",
    "table",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "br",
    "hr",
    "pre",
    "blockquote",
    "dd",
    "dt",
    "figcaption",
}


@dataclass
class Document:
    path: Path
    title: str
    text: str


class _HTMLText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self.h1_parts: list[str] = []
        self._skip_depth = 0
        self._in_title = False
        self._in_h1 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIPPED_TAGS:
            self._skip_depth += 1
        elif tag == "h1":
            self._in_h1 = True
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIPPED_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag == "h1":
            self._in_h1 = False
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
        elif self._skip_depth == 0:
            self.parts.append(data)
            if self._in_h1:
                self.h1_parts.append(data)


def tidy(text: str) -> str:
    """Collapse runs of spaces inside lines and runs of blank lines."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_document(html: str) -> tuple[str, str]:
    """(title, text) of an HTML page. The title is <title>, else the first <h1>."""
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    title = " ".join("".join(parser.title_parts).split()) or " ".join("".join(parser.h1_parts).split())
    return title, tidy("".join(parser.parts))


def markdown_to_document(markdown: str) -> tuple[str, str]:
    """(title, text): the first heading is the title; markup that hides words is removed."""
    title = ""
    front = re.match(r"^---\n.*?\n---\n", markdown, flags=re.S)  # YAML front matter
    if front:
        found = re.search(r"^title:\s*(.+)$", front.group(0), flags=re.M)
        title = found.group(1).strip().strip("'\"") if found else ""
        markdown = markdown[front.end() :]
    heading = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", markdown, flags=re.M)
    if not title and heading:
        title = heading.group(1)
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", markdown)  # images: keep the alt text
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)  # links: keep the label
    text = re.sub(r"^#{1,6}\s+", "", text, flags=re.M)
    text = re.sub(r"(\*\*|__|`)", "", text)
    return title, tidy(unescape(text))


def read_document(path: Path) -> Document | None:
    """A Document, or None for files that are not documents (wrong type, too big, binary)."""
    suffix = path.suffix.lower()
    if suffix not in DOCUMENT_SUFFIXES:
        return None
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        raw = path.read_bytes()
    except OSError:
        return None
    if b"\x00" in raw[:4096]:
        return None
    content = raw.decode("utf-8", errors="replace")
    if suffix in HTML_SUFFIXES:
        title, text = html_to_document(content)
    elif suffix in MARKDOWN_SUFFIXES:
        title, text = markdown_to_document(content)
    else:
        text = tidy(content)
        first_line = next((line for line in text.splitlines() if line.strip()), "")
        title = first_line[:120]
    return Document(path=path, title=title or path.stem.replace("_", " ").replace("-", " "), text=text)


def iter_documents(folder: Path) -> Iterator[Document]:
    """Documents under `folder`, sorted by path, hidden files and folders skipped."""
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        doc = read_document(path)
        if doc is not None and doc.text:
            yield doc
