"""The real news corpus and the naughty strings (../shared/corpus; skipped when absent)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from newsdrop.ingest.normalize import normalize
from newsdrop.ingest.run import IngestReport
from newsdrop.model import Hints
from newsdrop.store import Store

from conftest import corpus_path


def news_files() -> list[Path]:
    return sorted(corpus_path("news").rglob("*.txt"))


def paragraphs_of(body: str) -> list[str]:
    return [" ".join(p.split()) for p in body.split("\n\n") if p.strip()]


def test_headline_lines_become_titles_for_99_percent(hints: Hints) -> None:
    files = news_files()
    wrong = []
    for path in files:
        headline = path.read_text(encoding="utf-8").split("\n", 1)[0]
        entry = normalize(path.read_bytes(), path.name, hints)
        if entry.title != headline:
            wrong.append((path.name, headline, entry.title))
    assert len(files) > 1000
    assert len(wrong) / len(files) <= 0.01, wrong[:10]


def test_without_headline_the_title_is_a_prefix_of_the_first_sentence(hints: Hints) -> None:
    bad = []
    for path in news_files():
        body = path.read_text(encoding="utf-8").split("\n", 1)[1].lstrip("\n")
        title = normalize(body.encode(), path.name, hints).title
        first_paragraph = paragraphs_of(body)[0]
        if len(title) > 90 or not first_paragraph.startswith(title.removesuffix("…")):
            bad.append((path.name, title))
    assert bad == []


def test_no_body_paragraph_is_lost(hints: Hints) -> None:
    lost = []
    for path in news_files():
        body = path.read_text(encoding="utf-8").split("\n", 1)[1]
        entry = normalize(path.read_bytes(), path.name, hints)
        text = " ".join(entry.content_text.split())
        lost += [(path.name, p[:60]) for p in paragraphs_of(body) if p not in text]
        assert len(entry.summary) <= 300
        assert entry.summary and entry.content_text.startswith(entry.summary.removesuffix("…"))
    assert lost == []


def naughty_strings() -> list[str]:
    folder = corpus_path("naughty")
    lines = (folder / "blns.txt").read_text(encoding="utf-8").split("\n")
    from_txt = [line for line in lines if line and not line.startswith("#")]
    return list(dict.fromkeys(from_txt + json.loads((folder / "blns.json").read_text("utf-8"))))


def test_naughty_strings_as_titles_bodies_and_names_lose_no_file(
    home: Path, do_ingest: Callable[..., IngestReport], store: Store
) -> None:
    strings = naughty_strings()
    seeds = home / "seeds"
    written: set[str] = set()
    for number, text in enumerate(strings):
        safe = "".join(c for c in text if c.isalnum() or c in " -_")[:60].strip() or "x"
        raw = text.replace("/", "∕").replace("\x00", "")[
            :80
        ]  # as close to the string as a name can be
        for name, content in (
            (f"{raw}.txt", "Named naughtily\n\nThe file name is the test here.\n"),
            (f"{number:03d}-title-{safe}.txt", f"{text}\n\nA body paragraph follows here.\n"),
            (f"{number:03d}-body.md", f"---\ntitle: Naughty {number}\n---\n{text}\n"),
            (
                f"{number:03d}-page.html",
                f"<html><title>{text}</title><body><p>{text}</p></body></html>",
            ),
        ):
            try:
                (seeds / name).write_text(content, encoding="utf-8", errors="surrogatepass")
            except (OSError, UnicodeEncodeError):
                continue  # the file system refuses the name: nothing to ingest
            if not name.startswith("."):  # dotfiles are skipped by design, silently
                written.add(name)
    report = do_ingest()
    accounted = set(report.added) | {p.source for p in report.problems}
    accounted |= {source for source, _ in report.ignored}
    assert written <= accounted
    assert len(report.added) >= 0.95 * len(written)
    for stored in store.entries():
        assert "<script" not in stored.entry.content_html.lower()
