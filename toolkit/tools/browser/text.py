"""Page text: the readable text of a page (trafilatura, falling back to the browser's innerText),
cut into windows of about N characters at paragraph, sentence or word boundaries, and the
whitespace- and case-insensitive matching that `find` and `quote` use."""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_EXTRACTED_CHARS = 200  # below this (and under half the innerText) trafilatura dropped too much


def tidy(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.replace("\r", "\n").splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def readable_text(html: str, inner_text: str, url: str | None = None) -> tuple[str, str]:
    """(text, extractor): the main content by trafilatura when it kept enough of the page, else
    the page's innerText (what a person sees)."""
    inner = tidy(inner_text or "")
    try:
        import trafilatura

        extracted = trafilatura.extract(
            html, url=url, output_format="txt", include_comments=False, include_tables=True, favor_recall=True
        )
    except Exception:  # noqa: BLE001 - a page that trips the extractor still has its innerText
        extracted = None
    extracted = tidy(extracted or "")
    if extracted and (len(extracted) >= MIN_EXTRACTED_CHARS or len(extracted) * 2 >= len(inner)):
        return extracted, "trafilatura"
    return inner, "innerText"


@dataclass(frozen=True)
class Window:
    start: int
    end: int


def split_windows(text: str, size: int) -> list[Window]:
    """Consecutive spans of `text`, each at most `size` characters, cut at the last paragraph
    break, else sentence end, else space in the second half of the span."""
    windows: list[Window] = []
    pos, n = 0, len(text)
    while pos < n:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            break
        end = min(pos + size, n)
        if end < n:
            half = pos + size // 2
            for pattern in ("\n", ". ", "? ", "! ", "; ", " "):
                cut = text.rfind(pattern, half, end)
                if cut != -1:
                    end = cut + len(pattern)
                    break
        windows.append(Window(pos, end))
        pos = end
    return windows or [Window(0, 0)]


def _fold(text: str) -> tuple[str, list[int]]:
    """`text` lower-cased with whitespace runs collapsed to one space, and for each character of
    the result its offset in `text` (so a match maps back to the original)."""
    out: list[str] = []
    offsets: list[int] = []
    in_space = False
    for i, ch in enumerate(text):
        if ch.isspace():
            if not in_space and out:
                out.append(" ")
                offsets.append(i)
            in_space = True
            continue
        in_space = False
        out.append(ch.lower())
        offsets.append(i)
    return "".join(out), offsets


def normalise(text: str) -> str:
    return " ".join(text.split()).lower()


def find_spans(haystack: str, needle: str) -> list[tuple[int, int]]:
    """Every (start, end) in `haystack` where `needle` occurs, ignoring case and whitespace runs."""
    folded, offsets = _fold(haystack)
    target = normalise(needle)
    if not target:
        return []
    spans: list[tuple[int, int]] = []
    i = folded.find(target)
    while i != -1:
        spans.append((offsets[i], offsets[i + len(target) - 1] + 1))
        i = folded.find(target, i + 1)
    return spans


def window_of(windows: list[Window], offset: int) -> int:
    for i, w in enumerate(windows):
        if offset < w.end:
            return i
    return len(windows) - 1
