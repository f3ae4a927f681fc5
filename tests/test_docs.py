"""Every citation of a reference document in the code and tests resolves inside the repository.

The code cites its reference as ``NAME.md "Heading"`` (or ``NAME.md`` alone); ``docs/NAME.md`` must
exist and hold that heading (``##`` to ``####``, compared case-insensitively). A citation may wrap
onto the next line, also inside a ``#`` comment, and one ending in an ellipsis cites the heading
it begins. The README and the docs' own cross-references are checked too. The test names every
citation that does not resolve, not only the first.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NAMES = ("protocol", "sign-in", "consent-ledger", "delegation", "operations", "security")
SCANNED = ("idp", "consent", "keys", "tests", "bench", "examples", "docs")  # docs: their cross-references too
SUFFIXES = frozenset({".py", ".md", ".html", ".js", ".lua", ".txt"})
SKIPPED_PARTS = frozenset({"__pycache__", ".venv", "node_modules"})

_WRAP = r"\n[ \t]*(?:#[ \t]*)?"  # a line break, and the comment marker of the next line if any
CITATION = re.compile(
    r"(?<![\w./-])(?:docs/)?(?P<name>" + "|".join(re.escape(n) for n in NAMES) + r")\.md(?![\w-])"
    r"(?:[ \t]{0,2}(?:" + _WRAP + r")?\"(?P<heading>(?:[^\"\n]|" + _WRAP + r"){1,120}?)\")?"
)
HEADING = re.compile(r"^#{2,4}[ \t]+(?P<text>.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
ELLIPSIS = ("…", "...")


@dataclasses.dataclass(frozen=True)
class Citation:
    path: Path
    line: int
    name: str
    heading: str | None

    def __str__(self) -> str:
        cited = f'{self.name}.md "{self.heading}"' if self.heading else f"{self.name}.md"
        return f"{self.path.relative_to(ROOT)}:{self.line}: {cited}"


def _normalise(text: str) -> str:
    return " ".join(re.sub(_WRAP, " ", text).split()).casefold()


def scanned_files() -> list[Path]:
    files = [ROOT / "README.md"]
    for top in SCANNED:
        files += [path for path in sorted((ROOT / top).rglob("*"))
                  if path.suffix in SUFFIXES and path.is_file() and not SKIPPED_PARTS & set(path.parts)]
    return [path for path in files if path != Path(__file__).resolve()]


def citations_in(path: Path) -> list[Citation]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return [Citation(path, text.count("\n", 0, match.start()) + 1, match["name"],
                     " ".join(re.sub(_WRAP, " ", match["heading"]).split()) if match["heading"] else None)
            for match in CITATION.finditer(text)]


def headings_of(name: str) -> set[str] | None:
    doc = DOCS / f"{name}.md"
    if not doc.is_file():
        return None
    return {_normalise(match["text"]) for match in HEADING.finditer(doc.read_text(encoding="utf-8"))}


def resolves(citation: Citation, headings: set[str] | None) -> bool:
    if headings is None:
        return False
    if citation.heading is None:
        return True
    wanted = _normalise(citation.heading)
    for mark in ELLIPSIS:
        if wanted.endswith(mark):
            prefix = wanted.removesuffix(mark).rstrip()
            return any(heading.startswith(prefix) for heading in headings)
    return wanted in headings


def all_citations() -> list[Citation]:
    return [citation for path in scanned_files() for citation in citations_in(path)]


def test_the_scan_finds_the_citations_the_code_makes() -> None:
    found = all_citations()
    assert len(found) > 100, f"only {len(found)} citations found: the pattern no longer matches the code"
    assert {citation.name for citation in found} == set(NAMES)


def test_every_cited_document_and_heading_exists_in_docs() -> None:
    headings = {name: headings_of(name) for name in NAMES}
    unresolved = [str(c) for c in all_citations() if not resolves(c, headings[c.name])]
    assert not unresolved, "citations with no document or heading in docs/:\n" + "\n".join(unresolved)


def test_a_wrapped_citation_in_a_comment_is_read_whole(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('# see security.md "Secrets\n# and data" and sign-in.md\n', encoding="utf-8")
    found = citations_in(sample)
    assert [(c.name, c.heading) for c in found] == [("security", "Secrets and data"), ("sign-in", None)]
