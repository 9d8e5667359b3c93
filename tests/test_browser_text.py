"""Browser parts that need no browser: page text windows, the matching that `find` and `quote`
use, the settings."""

from __future__ import annotations

import yaml

from toolkit.registry import builtin_manifest_dir
from toolkit.tools.browser.settings import BrowserSettings, parse_settings
from toolkit.tools.browser.text import Window, find_spans, readable_text, split_windows


def test_windows_cover_the_text_and_cut_at_boundaries():
    text = "\n".join(f"Sentence number {i} is here." for i in range(100))
    windows = split_windows(text, 200)
    assert all(w.end - w.start <= 200 for w in windows)
    assert "".join(text[w.start : w.end] for w in windows).replace("\n", "") == text.replace("\n", "")
    assert all(text[w.end - 1] == "\n" for w in windows[:-1])  # cut after a line, not mid-word
    assert split_windows("", 100) == [Window(0, 0)]


def test_find_spans_ignores_case_and_spacing():
    text = "The  Tower is\n330 metres TALL. the tower"
    assert [text[s:e] for s, e in find_spans(text, "tower is 330")] == ["Tower is\n330"]
    assert len(find_spans(text, "THE TOWER")) == 2
    assert find_spans(text, "   ") == []


def test_readable_text_falls_back_to_inner_text_when_extraction_keeps_too_little():
    html = "<html><body><div>Short label</div><div>Another label</div></body></html>"
    text, extractor = readable_text(html, "Short label\nAnother label")
    assert "Short label" in text and "Another label" in text
    article = (
        "<html><body><nav>Menu Home About</nav><article>"
        + "<p>A long paragraph about towers and iron. </p>" * 20
        + "</article></body></html>"
    )
    text, extractor = readable_text(article, "Menu Home About\n" + "A long paragraph about towers and iron.\n" * 20)
    assert extractor == "trafilatura" and "Menu Home About" not in text


def test_manifest_settings_match_the_code_defaults():
    manifest = yaml.safe_load((builtin_manifest_dir() / "browser.yaml").read_text())
    assert parse_settings(manifest["settings"]) == BrowserSettings()
