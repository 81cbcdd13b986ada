"""The repository stands on its own: no tracked file points at anything outside it, and every
`docs/<page>.md#anchor` cited anywhere names a heading that exists on that page.

A checkout on any machine must be enough to read, test and run the project. The patterns
below are assembled from pieces so that this file does not match them itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_SLASH = "/"
_UP = "." * 2 + _SLASH
_SECTION = "\N{SECTION SIGN}"
_MD = ".m" + "d"

# Absolute paths on somebody's machine: work, home, root or Users right under the filesystem
# root (not when the slash continues a word or a URL's path).
_ABSOLUTE = re.compile(
    r"(?<![\w.~%-])" + _SLASH + "(?:" + "|".join(("work", "home", "root", "Users")) + ")"
    + _SLASH
)
# A relative path starting with one or more "../" (not one inside a longer path or URL).
_CLIMB = re.compile(r"(?<![\w./%\\-])((?:" + re.escape(_UP) + r")+)([^\s'\"`)\]>,;]*)")
# Documents that live outside the repository, cited by name or by section number.
_OUTSIDE_DOCUMENTS = re.compile(
    "|".join((re.escape("gateway" + "-contract" + ".md"), "contract " + _SECTION)),
    re.IGNORECASE,
)
# A Markdown document mentioned by name (`README.md`, `docs/reference.md`).
_MARKDOWN_NAME = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w.-]+\.md)(?![\w-])")
# A citation such as docs/reference.md#request-flow.
_CITATION = re.compile(r"(?<![\w./-])(docs/[\w.-]+\.md)#([\w-]+)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


@cache
def tracked_text_files() -> tuple[Path, ...]:
    """Every file git tracks that exists and reads as UTF-8 text (repository-relative)."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to know which files are tracked")
    listing = subprocess.run(
        [git, "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode("utf-8", "surrogateescape")
    files = []
    for name in sorted(filter(None, listing.split("\0"))):
        path = ROOT / name
        if path.is_file() and _text_of(path) is not None:
            files.append(Path(name))
    return tuple(files)


@cache
def _text_of(path: Path) -> str | None:
    """The file's text, or None for a binary file."""
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _lines(name: Path) -> Iterator[tuple[int, str]]:
    text = _text_of(ROOT / name)
    assert text is not None
    yield from enumerate(text.splitlines(), start=1)


def _climbs_out(name: Path, ups: int, rest: str) -> bool:
    """Whether `../…` in file `name` points outside the repository: it climbs above the root
    from the file's folder, or (read from the root, as prose often means) it leaves the
    repository and names nothing inside it from the file's folder either."""
    if ups > len(name.parent.parts):
        return True
    looks_like_a_path = "/" in rest.rstrip("/") or re.search(r"\.\w+$", rest) is not None
    if not looks_like_a_path:
        return False
    base = (ROOT / name.parent).joinpath(*[".."] * ups)
    return not (base / rest).exists()


def _markdown_exists(name: Path, mentioned: str) -> bool:
    """A mentioned `*.md` is ours when it resolves from the root or the mentioning file's
    folder, or, written without a folder, when some tracked file has that name."""
    if (ROOT / mentioned).is_file() or (ROOT / name.parent / mentioned).is_file():
        return True
    if "/" in mentioned:
        return False
    return any(tracked.name == mentioned for tracked in tracked_text_files())


def _outside_references(name: Path) -> Iterator[str]:
    for number, line in _lines(name):
        where = f"{name}:{number}"
        reasons = [f"absolute path {m.group(0)!r}" for m in _ABSOLUTE.finditer(line)]
        reasons += [
            f"relative path {m.group(0)!r} leaves the repository"
            for m in _CLIMB.finditer(line)
            if _climbs_out(name, m.group(1).count(_UP), m.group(2))
        ]
        reasons += [f"cites {m.group(0)!r}" for m in _OUTSIDE_DOCUMENTS.finditer(line)]
        reasons += [
            f"names {m.group(1)!r}, which the repository does not have"
            for m in _MARKDOWN_NAME.finditer(line)
            if _UP not in m.group(1) and not _markdown_exists(name, m.group(1))
        ]
        for reason in reasons:
            yield f"{where}: {reason}: {line.strip()[:120]}"


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: link targets and formatting dropped to their text,
    lower-cased, punctuation removed (letters, digits, `_` and `-` stay), spaces to `-`."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


@cache
def anchors_of(page: Path) -> frozenset[str]:
    """Every heading anchor of a Markdown page, with GitHub's -1, -2 … for repeats."""
    anchors: list[str] = []
    fenced = False
    text = _text_of(ROOT / page) or ""
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match is None:
            continue
        anchor = base = github_anchor(match.group(2))
        repeat = 0
        while anchor in anchors:
            repeat += 1
            anchor = f"{base}-{repeat}"
        anchors.append(anchor)
    return frozenset(anchors)


def _broken_citations(name: Path) -> Iterator[str]:
    for number, line in _lines(name):
        for match in _CITATION.finditer(line):
            page, anchor = Path(match.group(1)), match.group(2)
            if not (ROOT / page).is_file():
                yield f"{name}:{number}: {match.group(0)}: no such page"
            elif anchor not in anchors_of(page):
                yield f"{name}:{number}: {match.group(0)}: no heading with that anchor"


def _broken_in_page_links(page: Path) -> Iterator[str]:
    for number, line in _lines(page):
        for anchor in re.findall(r"\]\(#([^)\s]+)\)", line):
            if anchor not in anchors_of(page):
                yield f"{page}:{number}: (#{anchor}): no heading with that anchor"


def test_no_tracked_file_refers_outside_the_repository() -> None:
    problems = [
        problem for name in tracked_text_files() for problem in _outside_references(name)
    ]
    assert not problems, (
        f"{len(problems)} reference(s) to something outside the repository; cite "
        "docs/reference.md#<anchor> (or another in-repo file) instead:\n" + "\n".join(problems)
    )


def test_every_cited_docs_anchor_exists() -> None:
    problems = [
        problem for name in tracked_text_files() for problem in _broken_citations(name)
    ]
    assert not problems, "citations of missing docs headings:\n" + "\n".join(problems)


def test_in_page_links_of_the_docs_resolve() -> None:
    pages = [name for name in tracked_text_files() if name.suffix == ".md"]
    problems = [problem for page in pages for problem in _broken_in_page_links(page)]
    assert not problems, "links to missing headings:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        pytest.param("Request flow", "request-flow", id="words"),
        pytest.param("[server]", "server", id="toml-table"),
        pytest.param("[[routes]]", "routes", id="toml-array"),
        pytest.param("`default_access`", "default_access", id="code-and-underscore"),
        pytest.param("Identity-header stripping", "identity-header-stripping", id="hyphen"),
        pytest.param("See [Errors](#errors), please!", "see-errors-please", id="link-text"),
    ],
)
def test_github_anchor(heading: str, anchor: str) -> None:
    assert github_anchor(heading) == anchor


@pytest.mark.parametrize(
    ("line", "outside"),
    [
        pytest.param("see " + _SLASH + "work" + _SLASH + "x", True, id="absolute-work"),
        pytest.param('Path("' + _SLASH + "Users" + _SLASH + 'me")', True, id="absolute-users"),
        pytest.param("https://example.com/home/x", False, id="url-path"),
        pytest.param("/static/root/x", False, id="path-segment"),
        pytest.param("per the " + "Contract " + _SECTION + "3", True, id="contract-section"),
        pytest.param("RFC 9110 " + _SECTION + "7.6.1", False, id="rfc-section"),
    ],
)
def test_outside_patterns(line: str, outside: bool) -> None:
    """The patterns themselves, on lines that do and do not point outside."""
    found = bool(_ABSOLUTE.search(line) or _OUTSIDE_DOCUMENTS.search(line))
    assert found is outside


@pytest.mark.parametrize(
    ("name", "reference", "outside"),
    [
        pytest.param("gateway.toml", _UP + "shared", True, id="above-root"),
        pytest.param("docs/x" + _MD, _UP * 2 + "elsewhere/y" + _MD, True, id="above-root-twice"),
        pytest.param("docs/x" + _MD, _UP + "README" + _MD, False, id="into-repo"),
        pytest.param("docs/x" + _MD, _UP + "nowhere/z" + _MD, True, id="meant-from-root"),
        pytest.param("tests/unit/x.py", "/public/" + _UP + "admin", False, id="url-dot-dot"),
    ],
)
def test_climbing_paths(name: str, reference: str, outside: bool) -> None:
    matches = list(_CLIMB.finditer(reference))
    found = any(
        _climbs_out(Path(name), m.group(1).count(_UP), m.group(2)) for m in matches
    )
    assert found is outside
