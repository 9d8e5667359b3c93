"""The fence around tool output: `<tool_output name=... trust="untrusted-data">` ... `</tool_output>`.

Tool output is written by whoever controls a page, an API or a file, so it must not be able to
close the fence early (and go on as if it were the user or the system) or open a forged one
(`trust="trusted"`). Every tag-like form of the fence's name is removed from the body, not only
the exact closing tag:

- any case, whitespace or invisible characters (zero-width space, soft hyphen...) anywhere in it,
  `_`, `-`, `.`, `:` or nothing between the two words, attributes, a missing `>`;
- `<` and `>` as HTML entities (`&lt;`, `&#60;`, `&#x3c;`), JSON escapes (`\\u003c`) and
  percent-encoding (`%3c`), since a model reads those as the characters;
- look-alike characters, folded one to one before matching: NFKC's compatibility forms
  (fullwidth `＜／ｔｏｏｌ＿ｏｕｔｐｕｔ＞`, small forms, mathematical letters), angle brackets
  (`‹ 〈 ⟨ ᐸ`), slashes (`⁄ ∕ ⧸`), dashes, the Cyrillic and Greek letters that look like
  t, o, l, u, p, and the digits 0 and 1.

Not covered: a tag spelt out in words, or spread across two tool outputs.
"""

from __future__ import annotations

import functools
import html
import re
import sys
import unicodedata

TAG_NAME = "tool_output"
OBSERVATION_OPEN = '<tool_output name="{name}" trust="untrusted-data">'
OBSERVATION_CLOSE = "</tool_output>"
REMOVED = "[tool_output tag removed]"

# look-alikes NFKC leaves alone, folded to the ASCII they pass for
_HOMOGLYPHS = {
    "<": "‹〈⟨〈ᐸ❮﹤",
    ">": "›〉⟩〉ᐳ❯﹥",
    "/": "⁄∕⧸╱",
    "\\": "⧵﹨",
    "_": "‗",
    "-": "‐‑‒–—−",
    "o": "оОοΟօ0",
    "t": "тТτ",
    "p": "рРρ",
    "u": "υս",
    "l": "ӏӀǀ1|",
}
_RANGES = [(0x00A0, 0x024F), (0x2000, 0x2BFF), (0x3000, 0x303F), (0xFE30, 0xFE6F), (0xFF00, 0xFFEF), (0x1D400, 0x1D7FF)]
_INTERESTING = set("<>/\\_-.:" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@functools.cache
def _fold_table() -> dict[int, int]:
    """Code point -> the lower-case ASCII character it passes for; one character to one, so that
    positions in the folded text are positions in the original."""
    table: dict[int, int] = {}
    for start, end in _RANGES:
        for cp in range(start, min(end, sys.maxunicode) + 1):
            folded = unicodedata.normalize("NFKC", chr(cp))
            if len(folded) == 1 and folded in _INTERESTING and ord(folded) != cp:
                table[cp] = ord(folded.lower())
    for ascii_char, lookalikes in _HOMOGLYPHS.items():
        for ch in lookalikes:
            table[ord(ch)] = ord(ascii_char)
    for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":  # case folded here too: an IGNORECASE scan costs 4x
        table[ord(ch)] = ord(ch.lower())
    return table


_INVISIBLE = r"\s\u00ad\u034f\u180e\u200b-\u200f\u2060-\u2064\ufeff"
_GAP = f"[{_INVISIBLE}]*"
# digits are matched as [0o] because the folding turned 0 into o (and 1 into l) before matching
_OPENER = r"(?:<|&lt;?|&#[0o]*6[0o];?|&#x[0o]*3c;?|\\+u[0o][0o]3c|%3c)"
_CLOSER = r"(?:>|&gt;?|&#[0o]*62;?|&#x[0o]*3e;?|\\+u[0o][0o]3e|%3e)"
_SLASH = r"(?:/|\\|&#[0o]*47;?|&#x[0o]*2f;?|\\+u[0o][0o]2f|%2f)"


def _word(word: str) -> str:
    return _GAP.join(re.escape(c) for c in word)


# the name first (a literal start, found fast), then what must come right before and after it
_NAME = re.compile(_word("tool") + f"[{_INVISIBLE}_\\-.:]*" + _word("output"))
_BEFORE = re.compile(f"{_OPENER}{_GAP}(?:{_SLASH}{_GAP})?\\Z")
_AFTER = re.compile(f"[^<>\\n]{{0,200}}?{_CLOSER}")
_LOOK_BACK = 256  # characters before the name in which its `<` (and `/`) may stand


def defuse_tags(text: str) -> str:
    """`text` with every opening or closing tag of the fence, in any of the forms above, replaced
    by a plain marker."""
    folded = text.translate(_fold_table())
    spans: list[tuple[int, int]] = []
    for name in _NAME.finditer(folded):
        before = _BEFORE.search(folded, max(0, name.start() - _LOOK_BACK), name.start())
        if before is None or (spans and before.start() < spans[-1][1]):
            continue
        after = _AFTER.match(folded, name.end())
        spans.append((before.start(), after.end() if after else name.end()))
    if not spans:
        return text
    pieces, last = [], 0
    for start, end in spans:
        pieces.append(text[last:start])
        pieces.append(REMOVED)
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def fence(name: str, body: str) -> str:
    """A tool's output as the model reads it: labelled untrusted, its tags defused, its name
    (which a model may have invented) unable to add attributes."""
    opening = OBSERVATION_OPEN.format(name=html.escape(name, quote=True))
    return f"{opening}\n{defuse_tags(body)}\n{OBSERVATION_CLOSE}"
