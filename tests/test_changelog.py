"""CHANGES.md parsing and checking, in both styles, and what counts as a new entry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calcifer_bot.changelog import (
    SECTIONS,
    Changelog,
    Entry,
    Problem,
    Style,
    added_entries,
    parse,
    render_entry,
)

REPO_CHANGES = Path(__file__).resolve().parents[1] / "CHANGES.md"

KEEP_A_CHANGELOG = """\
# Changelog

All notable changes to this project will be documented in this file.

The format is based on [Keep a Changelog](https://keepachangelog.com/en/1.1.0/),
and this project adheres to [Semantic Versioning](https://semver.org/spec/v2.0.0.html).

## [Unreleased]

### Added
- Backup command for the NAS.

## [1.1.0] - 2026-03-05

### Added
- Arabic translation (#444).
- Improved Dutch translation
  by the community, with
    deeper indentation too.

### Fixed
* Typo in the Ukrainian translation.

### Changed
- Upgrade dependencies.

## [1.0.0-rc.1] - 2026-01-02

### Removed
- Trademark sign previously shown after the project description.

## [0.3.0] - 2025-12-20 [YANKED]

### Security
- Session cookies are `Secure`.

[Unreleased]: https://example.org/compare/v1.1.0...HEAD
[1.1.0]: https://example.org/compare/v1.0.0-rc.1...v1.1.0
[1.0.0-rc.1]: https://example.org/compare/v0.3.0...v1.0.0-rc.1
[0.3.0]: https://example.org/releases/tag/v0.3.0
"""

# Released versions only, without brackets, a different title, lower-case section names,
# en dashes, a comment and tabs: all forgiven.
RELEASES_ONLY = """\
# History of calcifer-tools
<!-- next version goes here -->
## 2.0.0 – 2026-12-03
### added
- Tabs\tinside the text stay.
\tand a tab-indented continuation.

## 1.9.3 - 2026-11-30
### Deprecated
- `--old-flag`; use `--new-flag`.
### Removed
- Python 3.10 support.
"""

EMPTY_UNRELEASED = "# Changelog\n\n## [Unreleased]\n"

DATED = """\
# Changes

Each heading is one change: date, name, type.

## 2025-11-25 - Nas backup - Added
- Nightly rsync of /srv to the NAS,
  kept for 30 days.
- `backup status` command.

## 2025-11-26 - Nas backup - fixed
* Retention counted from the last success.

## 2025-12-01 - Grafana - SECURITY
- Admin password moved to a secret.
"""


def kac(body: str) -> str:
    """A Keep a Changelog file: title on line 1, blank line 2, ``body`` from line 3."""
    return "# Changelog\n\n" + body


def only_problem(changelog: Changelog) -> Problem:
    assert len(changelog.problems) == 1, changelog.problems
    return changelog.problems[0]


# Good files.


def test_this_repositorys_changes_md_is_valid() -> None:
    changelog = parse(REPO_CHANGES.read_text(encoding="utf-8"))

    assert changelog.problems == ()
    bullets = [
        n
        for n, line in enumerate(REPO_CHANGES.read_text(encoding="utf-8").split("\n"), 1)
        if line.startswith(("- ", "* "))
    ]
    assert [e.line for e in changelog.entries] == bullets
    assert {e.version for e in changelog.entries} == {"Unreleased"}
    assert {e.section for e in changelog.entries} <= set(SECTIONS)
    assert all("\n" not in e.text and "  " not in e.text for e in changelog.entries)


def test_keep_a_changelog_example() -> None:
    changelog = parse(KEEP_A_CHANGELOG)

    assert changelog.valid
    assert changelog.entries == (
        Entry("Unreleased", None, "Added", "Backup command for the NAS.", 11),
        Entry("1.1.0", date(2026, 3, 5), "Added", "Arabic translation (#444).", 16),
        Entry(
            "1.1.0",
            date(2026, 3, 5),
            "Added",
            "Improved Dutch translation by the community, with deeper indentation too.",
            17,
        ),
        Entry("1.1.0", date(2026, 3, 5), "Fixed", "Typo in the Ukrainian translation.", 22),
        Entry("1.1.0", date(2026, 3, 5), "Changed", "Upgrade dependencies.", 25),
        Entry(
            "1.0.0-rc.1",
            date(2026, 1, 2),
            "Removed",
            "Trademark sign previously shown after the project description.",
            30,
        ),
        Entry("0.3.0", date(2025, 12, 20), "Security", "Session cookies are `Secure`.", 35),
    )


def test_bare_versions_en_dashes_lower_case_sections_and_tabs() -> None:
    changelog = parse(RELEASES_ONLY)

    assert changelog.valid, changelog.problems
    assert changelog.entries == (
        Entry(
            "2.0.0",
            date(2026, 12, 3),
            "Added",
            "Tabs\tinside the text stay. and a tab-indented continuation.",
            5,
        ),
        Entry("1.9.3", date(2026, 11, 30), "Deprecated", "`--old-flag`; use `--new-flag`.", 10),
        Entry("1.9.3", date(2026, 11, 30), "Removed", "Python 3.10 support.", 12),
    )


def test_an_empty_unreleased_version_is_valid() -> None:
    assert parse(EMPTY_UNRELEASED) == Changelog(entries=(), problems=())


def test_crlf_trailing_whitespace_and_a_byte_order_mark_are_forgiven() -> None:
    crlf = "\ufeff" + "\r\n".join(f"{line}  \t" for line in KEEP_A_CHANGELOG.split("\n"))

    assert parse(crlf) == parse(KEEP_A_CHANGELOG)
    assert parse(DATED.replace("\n", "\r\n"), "dated") == parse(DATED, "dated")


def test_line_numbers_count_only_newlines() -> None:
    # A form feed is a line break to str.splitlines, not to editors or Git.
    changelog = parse(kac("## [Unreleased]\f\n### Added\n- x\u2028y\n"))

    assert changelog.valid
    assert changelog.entries == (Entry("Unreleased", None, "Added", "x\u2028y", 5),)


def test_dated_style() -> None:
    changelog = parse(DATED, "dated")

    assert changelog.valid, changelog.problems
    assert changelog.entries == (
        Entry(
            "2025-11-25 - Nas backup",
            date(2025, 11, 25),
            "Added",
            "Nightly rsync of /srv to the NAS, kept for 30 days.",
            6,
        ),
        Entry(
            "2025-11-25 - Nas backup", date(2025, 11, 25), "Added", "`backup status` command.", 8
        ),
        Entry(
            "2025-11-26 - Nas backup",
            date(2025, 11, 26),
            "Fixed",
            "Retention counted from the last success.",
            11,
        ),
        Entry(
            "2025-12-01 - Grafana",
            date(2025, 12, 1),
            "Security",
            "Admin password moved to a secret.",
            14,
        ),
    )


def test_a_dated_name_may_hold_dashes() -> None:
    changelog = parse("## 2025-11-25 - Nas - offsite copy - Changed\n- x\n", "dated")

    assert changelog.valid
    assert changelog.entries[0].version == "2025-11-25 - Nas - offsite copy"
    assert changelog.entries[0].section == "Changed"


# Bad files: one per kind of problem, with its line and what was expected.

BAD_KEEP_A_CHANGELOG = {
    "section outside a version": (
        kac("### Added\n- x\n\n## [Unreleased]\n"),
        3,
        ["outside a version", "expected '## [Unreleased]' or '## [1.2.0] - YYYY-MM-DD'"],
    ),
    "unknown section": (
        kac("## [Unreleased]\n\n### Misc\n- x\n"),
        5,
        ["expected '### Added', '### Changed', '### Deprecated'", "got '### Misc'"],
    ),
    "unknown section, close to a known one": (
        kac("## [Unreleased]\n### Fix\n- x\n"),
        4,
        ["expected '### Added'", "got '### Fix'", "did you mean '### Fixed'?"],
    ),
    "section heading without its space": (
        kac("## [Unreleased]\n###Added\n- x\n"),
        4,
        ["expected '### Added'", "did you mean '### Added'?"],
    ),
    "version in a wrong form": (
        kac("## 1.2\n### Added\n- x\n"),
        3,
        ["expected '## [Unreleased]' or '## [1.2.0] - YYYY-MM-DD'", "got '## 1.2'"],
    ),
    "version with a v": (
        kac("## [v1.2.0] - 2026-12-03\n### Added\n- x\n"),
        3,
        ["expected '## [Unreleased]' or '## [1.2.0] - YYYY-MM-DD'"],
    ),
    "date that does not exist": (
        kac("## [1.2.0] - 2026-02-30\n### Added\n- x\n"),
        3,
        ["invalid date '2026-02-30'", "expected a real date YYYY-MM-DD"],
    ),
    "date in another form": (
        kac("## [1.2.0] - 03.12.2026\n### Added\n- x\n"),
        3,
        ["expected a date YYYY-MM-DD", "got '03.12.2026'"],
    ),
    "released version without a date": (
        kac("## [1.2.0]\n### Added\n- x\n"),
        3,
        ["1.2.0 has no release date", "expected '## [1.2.0] - YYYY-MM-DD'"],
    ),
    "unreleased with a date": (
        kac("## [Unreleased] - 2026-12-03\n"),
        3,
        ["expected '## [Unreleased]'"],
    ),
    "bullet under a version, outside any section": (
        kac("## [Unreleased]\n- x\n"),
        4,
        ["bullet outside any section", "expected '### Added'"],
    ),
    "bullet before any version": (
        kac("- x\n\n## [Unreleased]\n"),
        3,
        ["bullet outside any section", "expected '## [Unreleased]'"],
    ),
    "empty bullet": (
        kac("## [Unreleased]\n### Added\n- \n- x\n"),
        5,
        ["empty bullet", "expected '- ' followed by the change"],
    ),
    "empty star bullet": (
        kac("## [Unreleased]\n### Added\n- x\n*\n"),
        6,
        ["empty bullet"],
    ),
    "duplicate version": (
        kac("## [1.2.0] - 2026-12-03\n### Added\n- x\n## [1.2.0] - 2026-12-04\n### Fixed\n- y\n"),
        6,
        ["1.2.0 appears twice (first at line 3)", "expected each version once"],
    ),
    "duplicate section": (
        kac("## [Unreleased]\n### Added\n- x\n### Fixed\n- y\n### Added\n- z\n"),
        8,
        ["'### Added' appears twice in Unreleased (first at line 4)", "expected each section"],
    ),
    "prose inside a section": (
        kac("## [Unreleased]\n### Added\n- x\n\nSome prose.\n"),
        7,
        ["expected a bullet ('- text') under '### Added'", "got 'Some prose.'"],
    ),
    "continuation after a blank line": (
        kac("## [Unreleased]\n### Added\n- x\n\n  more of x\n"),
        7,
        ["expected a bullet", "a continuation must follow its bullet directly"],
    ),
    "prose under a version, outside any section": (
        kac("## [Unreleased]\nSome prose.\n"),
        4,
        ["expected a section such as '### Added' under '## [Unreleased]'"],
    ),
    "second unreleased": (
        kac("## [Unreleased]\n### Added\n- x\n## [Unreleased]\n### Fixed\n- y\n"),
        6,
        ["a second '## [Unreleased]' (first at line 3)", "expected at most one"],
    ),
    "unreleased after a release": (
        kac("## [1.0.0] - 2026-01-01\n### Added\n- x\n## [Unreleased]\n"),
        6,
        ["after '## [1.0.0] - 2026-01-01' at line 3", "expected Unreleased first"],
    ),
    "title after the first version": (
        kac("## [Unreleased]\n# Changelog\n"),
        4,
        ["expected the '# ' title only at the top"],
    ),
    "deeper heading inside a section": (
        kac("## [Unreleased]\n### Added\n#### Details\n"),
        5,
        ["expected a bullet, '## ' version or '### ' section", "got '#### Details'"],
    ),
}


@pytest.mark.parametrize(
    ("text", "line", "fragments"),
    BAD_KEEP_A_CHANGELOG.values(),
    ids=BAD_KEEP_A_CHANGELOG.keys(),
)
def test_keep_a_changelog_problems(text: str, line: int, fragments: list[str]) -> None:
    problem = only_problem(parse(text))

    assert problem.line == line
    for fragment in fragments:
        assert fragment in problem.message


@pytest.mark.parametrize("text", ["", "# Changelog\n\nNothing yet.\n"], ids=["empty", "prose"])
def test_no_versions_is_a_problem_of_the_whole_file(text: str) -> None:
    problem = only_problem(parse(text))

    assert problem.line == 0
    assert "no versions: expected '## [Unreleased]' or '## [1.2.0] - YYYY-MM-DD'" in str(problem)


BAD_DATED = {
    "heading without a type": (
        "## 2025-11-25 - Nas backup\n- x\n",
        1,
        ["expected '## YYYY-MM-DD - Name - Type'", "got '## 2025-11-25 - Nas backup'"],
    ),
    "date that does not exist": (
        "## 2025-02-29 - Nas backup - Added\n- x\n",
        1,
        ["invalid date '2025-02-29'", "expected a real date YYYY-MM-DD"],
    ),
    "date in another form": (
        "## 25.11.2025 - Nas backup - Added\n- x\n",
        1,
        ["expected a date YYYY-MM-DD", "got '25.11.2025'"],
    ),
    "unknown type": (
        "## 2025-11-25 - Nas backup - Fix\n- x\n",
        1,
        ["expected the type to be Added, Changed", "got 'Fix'", "did you mean 'Fixed'?"],
    ),
    "unknown type, nothing close": (
        "## 2025-11-25 - Nas backup - Misc\n- x\n",
        1,
        ["expected the type to be Added, Changed, Deprecated, Removed, Fixed or Security"],
    ),
    "bullet before any heading": (
        "# Changes\n- x\n## 2025-11-25 - Nas backup - Added\n- y\n",
        2,
        ["bullet before any heading", "expected '## YYYY-MM-DD - Name - Type'"],
    ),
    "empty bullet": (
        "## 2025-11-25 - Nas backup - Added\n- x\n-\n",
        3,
        ["empty bullet", "expected '- ' followed by the change"],
    ),
    "section heading": (
        "## 2025-11-25 - Nas backup - Added\n### Fixed\n- x\n",
        2,
        ["expected '## YYYY-MM-DD - Name - Type'", "no '###' sections", "got '### Fixed'"],
    ),
    "prose under a heading": (
        "## 2025-11-25 - Nas backup - Added\n- x\n\nWhy we did it.\n",
        4,
        ["expected a bullet ('- text') under '## 2025-11-25 - Nas backup - Added'"],
    ),
}


@pytest.mark.parametrize(("text", "line", "fragments"), BAD_DATED.values(), ids=BAD_DATED.keys())
def test_dated_problems(text: str, line: int, fragments: list[str]) -> None:
    problem = only_problem(parse(text, "dated"))

    assert problem.line == line
    for fragment in fragments:
        assert fragment in problem.message


def test_dated_file_without_headings() -> None:
    problem = only_problem(parse("# Changes\n\nNothing yet.\n", "dated"))

    assert str(problem) == "no headings: expected '## YYYY-MM-DD - Name - Type'"


def test_keep_a_changelog_headings_are_wrong_in_the_dated_style() -> None:
    changelog = parse(KEEP_A_CHANGELOG, "dated")

    assert not changelog.valid
    assert changelog.problems[0].line == 8  # ## [Unreleased]


def test_what_follows_an_unreadable_heading_is_not_reported_again() -> None:
    changelog = parse(
        kac("## 1.2\n### Added\n- x\n\nprose\n### Misc\n- y\n## [1.1.0] - 2026-01-01\n")
    )

    assert [p.line for p in changelog.problems] == [3]
    assert changelog.entries == ()


def test_problems_in_line_order_and_str() -> None:
    changelog = parse(kac("## [1.0.0]\n### Fix\n## [1.0.0] - 2026-02-30\n"))

    assert [str(p) for p in changelog.problems] == [
        "line 3: version 1.0.0 has no release date: expected '## [1.0.0] - YYYY-MM-DD'",
        "line 4: expected '### Added', '### Changed', '### Deprecated', '### Removed', "
        "'### Fixed' or '### Security', got '### Fix'; did you mean '### Fixed'?",
        "line 5: invalid date '2026-02-30': expected a real date YYYY-MM-DD",
        "line 5: version 1.0.0 appears twice (first at line 3): expected each version once",
    ]
    assert str(Problem(0, "no versions")) == "no versions"


def test_long_lines_are_shortened_in_messages() -> None:
    problem = only_problem(parse(kac("## [Unreleased]\n### Added\n- x\n\n" + "word " * 40)))

    assert problem.message.endswith("…'")
    assert len(problem.message) < 120


# What is new.

BEFORE = kac("## [Unreleased]\n### Added\n- Backups.\n### Fixed\n- A typo.\n")


def test_a_new_bullet_under_unreleased_is_new() -> None:
    after = kac("## [Unreleased]\n### Added\n- Backups.\n- Restores.\n### Fixed\n- A typo.\n")

    assert added_entries(BEFORE, after) == [Entry("Unreleased", None, "Added", "Restores.", 6)]


def test_an_edited_bullet_is_new() -> None:
    after = BEFORE.replace("A typo.", "Two typos.")

    assert added_entries(BEFORE, after) == [Entry("Unreleased", None, "Fixed", "Two typos.", 7)]


def test_re_wrapping_a_bullet_is_not_new() -> None:
    assert added_entries(BEFORE, BEFORE.replace("- A typo.", "- A\n  typo.")) == []


def test_a_release_adds_nothing() -> None:
    released = kac(
        "## [Unreleased]\n\n## [1.2.0] - 2026-12-03\n### Added\n- Backups.\n### Fixed\n- A typo.\n"
    )

    assert parse(released).valid
    assert added_entries(BEFORE, released) == []


def test_a_release_with_one_more_bullet_adds_only_that() -> None:
    released = kac(
        "## [1.2.0] - 2026-12-03\n### Added\n- Backups.\n### Fixed\n- A typo.\n- Another.\n"
    )

    assert added_entries(BEFORE, released) == [
        Entry("1.2.0", date(2026, 12, 3), "Fixed", "Another.", 8)
    ]


def test_the_same_text_in_another_section_is_new() -> None:
    after = BEFORE.replace("### Fixed\n- A typo.", "### Fixed\n- A typo.\n- Backups.")

    assert added_entries(BEFORE, after) == [Entry("Unreleased", None, "Fixed", "Backups.", 8)]


def test_a_second_copy_of_a_bullet_is_new() -> None:
    after = BEFORE.replace("- Backups.", "- Backups.\n- Backups.")

    assert added_entries(BEFORE, after) == [Entry("Unreleased", None, "Added", "Backups.", 6)]


def test_a_new_file_has_only_new_entries() -> None:
    assert added_entries(None, BEFORE) == list(parse(BEFORE).entries)
    assert added_entries(None, DATED, "dated") == list(parse(DATED, "dated").entries)


def test_removed_entries_do_not_count() -> None:
    assert added_entries(BEFORE, kac("## [Unreleased]\n### Added\n- Backups.\n")) == []
    assert added_entries(BEFORE, EMPTY_UNRELEASED) == []


def test_added_entries_in_the_dated_style() -> None:
    after = DATED + "\n## 2025-12-02 - Grafana - Fixed\n- Dashboards load again.\n"

    assert added_entries(DATED, after, "dated") == [
        Entry("2025-12-02 - Grafana", date(2025, 12, 2), "Fixed", "Dashboards load again.", 17)
    ]


def test_render_entry() -> None:
    changelog = parse(KEEP_A_CHANGELOG)

    assert render_entry(changelog.entries[0]) == "Added (Unreleased): Backup command for the NAS."
    assert render_entry(changelog.entries[3]) == "Fixed (1.1.0): Typo in the Ukrainian translation."
    assert (
        render_entry(parse(DATED, "dated").entries[2])
        == "Fixed (2025-11-26 - Nas backup): Retention counted from the last success."
    )


# Any valid changelog built from parts parses back to exactly its parts.

# Anything but line breaks; at least one character that is not whitespace.
PART = st.text(
    st.characters(codec="utf-8", exclude_characters="\r\n"), min_size=1, max_size=30
).filter(str.strip)
DATES = st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31))
SEMVER = st.builds(
    lambda a, b, c, pre: f"{a}.{b}.{c}{pre}",
    st.integers(0, 20),
    st.integers(0, 20),
    st.integers(0, 200),
    st.sampled_from(["", "", "-rc.1", "-beta", "-alpha.2"]),
)


@dataclass(frozen=True)
class Bullet:
    marker: str
    parts: list[str]  # first line, then continuation lines
    indent: str


BULLETS = st.builds(
    Bullet,
    st.sampled_from("-*"),
    st.lists(PART, min_size=1, max_size=3),
    st.sampled_from(["  ", "    ", "\t"]),
)
SECTION_BLOCKS = st.lists(
    st.tuples(st.sampled_from(SECTIONS), st.lists(BULLETS, max_size=4)),
    max_size=4,
    unique_by=lambda block: block[0],
)
GAPS = st.lists(st.sampled_from(["", " ", "\t"]), max_size=2)


@dataclass
class Builder:
    lines: list[str]
    entries: list[Entry]

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def bullets(
        self, bullets: list[Bullet], version: str, released: date | None, section: str
    ) -> None:
        for bullet in bullets:
            text = " ".join(p.strip() for p in bullet.parts)
            self.entries.append(Entry(version, released, section, text, len(self.lines) + 1))
            self.add(f"{bullet.marker} {bullet.parts[0]}")
            self.add(*(bullet.indent + part for part in bullet.parts[1:]))


@st.composite
def keep_a_changelog(draw: st.DrawFn) -> tuple[str, list[Entry]]:
    built = Builder(["# Changelog", "", "Prose before the first version."], [])
    versions: list[tuple[str, date | None]] = []
    if draw(st.booleans()):
        versions.append(("Unreleased", None))
    versions += [(v, draw(DATES)) for v in draw(st.lists(SEMVER, max_size=4, unique=True))]
    if not versions:
        versions.append(("Unreleased", None))
    for version, released in versions:
        built.add(*draw(GAPS))
        if released is None:
            built.add(draw(st.sampled_from(["## [Unreleased]", "## Unreleased"])))
        else:
            name = draw(st.sampled_from([f"[{version}]", version]))
            yanked = draw(st.sampled_from(["", " [YANKED]"]))
            built.add(f"## {name} - {released.isoformat()}{yanked}")
        for section, bullets in draw(SECTION_BLOCKS):
            built.add(*draw(GAPS), f"### {section}", *draw(GAPS))
            built.bullets(bullets, version, released, section)
    built.add("", *(f"[{v}]: https://example.org/{v}" for v, _ in versions))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(built.lines), built.entries


@st.composite
def dated(draw: st.DrawFn) -> tuple[str, list[Entry]]:
    built = Builder(["# Changes", ""], [])
    names = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=12)
    for _ in range(draw(st.integers(1, 4))):
        day, name, section = draw(DATES), draw(names), draw(st.sampled_from(SECTIONS))
        typed = draw(st.sampled_from([section, section.lower(), section.upper()]))
        built.add(*draw(GAPS), f"## {day.isoformat()} - {name} - {typed}")
        built.bullets(draw(st.lists(BULLETS, max_size=3)), f"{day} - {name}", day, section)
    return "\n".join(built.lines), built.entries


@pytest.mark.parametrize(
    ("style", "files"), [("keep-a-changelog", keep_a_changelog()), ("dated", dated())]
)
@settings(deadline=None)
@given(data=st.data())
def test_a_generated_valid_changelog_parses_back(
    style: Style, files: st.SearchStrategy[tuple[str, list[Entry]]], data: st.DataObject
) -> None:
    text, entries = data.draw(files)
    changelog = parse(text, style)

    assert changelog.problems == ()
    assert list(changelog.entries) == entries
    assert added_entries(text, text, style) == []
    assert added_entries(None, text, style) == entries
