"""CHANGES.md read and checked: Keep a Changelog, or the seed project's dated headings.

Pure text in, entries and problems out; the Git integration decides what to do
with them (refuse a change, announce new entries in chat). Every problem names
its line and what was expected there, because a person fixes it in an editor.

Keep a Changelog (https://keepachangelog.com/en/1.1.0/)::

    # Changelog
    Free prose.
    ## [Unreleased]
    ### Added
    - An entry, which may continue
      on lines indented by two spaces.
    ## [1.2.0] - 2026-12-03
    ...
    [Unreleased]: https://example.org/compare/v1.2.0...HEAD

Dated (the seed's)::

    ## 2025-11-25 - Nas backup - Added
    - An entry.
"""

from __future__ import annotations

import abc
import difflib
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

Style = Literal["keep-a-changelog", "dated"]
SECTIONS = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")

UNRELEASED = "Unreleased"
VERSION_FORM = "'## [Unreleased]' or '## [1.2.0] - YYYY-MM-DD'"
DATED_FORM = "'## YYYY-MM-DD - Name - Type'"
SECTION_FORM = ", ".join(f"'### {s}'" for s in SECTIONS[:-1]) + f" or '### {SECTIONS[-1]}'"
TYPE_FORM = ", ".join(SECTIONS[:-1]) + f" or {SECTIONS[-1]}"

# Hyphen as Keep a Changelog writes it; en and em dashes because editors and
# chat clients turn " - " into them.
_DASH = r"[ \t]+[-–—][ \t]+"
_VERSION = re.compile(
    r"##[ \t]+(?:\[(?P<bracketed>[^\]]*)\]|(?P<bare>[^\s\[\]]+))"
    rf"(?:{_DASH}(?P<date>\S+))?"
    r"(?P<yanked>[ \t]+\[(?i:yanked)\])?"
)
_SEMVER = re.compile(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?")
# Greedy name: a name may hold " - " itself, the type is always one word.
_DATED = re.compile(rf"##[ \t]+(?P<date>\S+){_DASH}(?P<name>.*\S){_DASH}(?P<type>\S+)")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_BULLET = re.compile(r"[-*](?:[ \t]+(?P<text>.*))?")
_LINK_DEFINITION = re.compile(r"\[[^\]]+\]:[ \t]*\S.*")
_COMMENT = re.compile(r"<!--.*-->")
_HEADING = re.compile(r"(?P<marks>#+)(?P<rest>.*)")


@dataclass(frozen=True, slots=True)
class Entry:
    """One bullet, with the version and section it sits under.

    ``version`` is "Unreleased", "1.2.0", or for the dated style the heading's
    title ("2025-11-25 - Nas backup"); ``released`` is None while unreleased.
    """

    version: str
    released: date | None
    section: str  # one of SECTIONS
    text: str  # continuation lines joined with single spaces
    line: int  # 1-based, the bullet's first line


@dataclass(frozen=True, slots=True)
class Problem:
    line: int  # 1-based; 0 for problems of the whole file
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass(frozen=True, slots=True)
class Changelog:
    entries: tuple[Entry, ...]
    problems: tuple[Problem, ...]

    @property
    def valid(self) -> bool:
        return not self.problems


def parse(text: str, style: Style = "keep-a-changelog") -> Changelog:
    reader = _DatedReader() if style == "dated" else _KeepAChangelogReader()
    return reader.read(text)


def added_entries(old: str | None, new: str, style: Style = "keep-a-changelog") -> list[Entry]:
    """Entries of ``new`` that ``old`` does not have, in ``new``'s order.

    Compared by version, section and text; an entry moved between versions
    (Unreleased → 1.2.0 on release) is not new. ``old=None``: the file did not
    exist, all of new's entries are new. Counted as multisets, so a second copy
    of an existing bullet is new, and re-wrapping a bullet changes nothing.
    """
    fresh = parse(new, style).entries
    if old is None:
        return list(fresh)
    remaining = Counter((e.version, e.section, e.text) for e in parse(old, style).entries)
    unmatched: list[Entry] = []
    for entry in fresh:
        key = (entry.version, entry.section, entry.text)
        if remaining[key]:
            remaining[key] -= 1
        else:
            unmatched.append(entry)
    # Only old entries no longer where they were can explain a move.
    moved = Counter[tuple[str, str]]()
    for (_, section, text), count in remaining.items():
        moved[section, text] += count
    added: list[Entry] = []
    for entry in unmatched:
        if moved[entry.section, entry.text]:
            moved[entry.section, entry.text] -= 1
        else:
            added.append(entry)
    return added


def render_entry(entry: Entry) -> str:
    """One line for chat: ``Added (Unreleased): the text``."""
    return f"{entry.section} ({entry.version}): {entry.text}"


def _quote(text: str, longest: int = 60) -> str:
    # Problems go to chat: a whole paragraph quoted back helps nobody.
    return f"'{text}'" if len(text) <= longest else f"'{text[: longest - 1]}…'"


_BY_LOWER = {s.lower(): s for s in SECTIONS}


def _suggestion(word: str, prefix: str = "") -> str:
    close = difflib.get_close_matches(word.lower(), _BY_LOWER, n=1)
    return f"; did you mean '{prefix}{_BY_LOWER[close[0]]}'?" if close else ""


def _section_named(word: str) -> str | None:
    # Forgiving with case ("### added", "Fixed" vs "fixed"); the entry gets SECTIONS' spelling.
    return _BY_LOWER.get(word.lower())


def _real_date(text: str) -> date | str:
    """The date, or the problem with it."""
    if not _ISO_DATE.fullmatch(text):
        return f"expected a date YYYY-MM-DD, got {_quote(text)}"
    try:
        return date.fromisoformat(text)
    except ValueError:
        return f"invalid date {_quote(text)}: expected a real date YYYY-MM-DD"


@dataclass(slots=True)
class _Bullet:
    line: int
    parts: list[str]
    # Where its Entry goes: (version, released, section); None when it has nowhere
    # to go (outside any section, under a heading that could not be read).
    place: tuple[str, date | None, str] | None
    flagged: bool  # a problem was already reported for this bullet's line


@dataclass(slots=True)
class _Reader(abc.ABC):
    """Line by line; the styles differ only in their headings (the abstract methods)."""

    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    bullet: _Bullet | None = None
    headings: int = 0  # version headings seen, readable or not
    # Where bullets go now; None before the first heading or under a bad one.
    place: tuple[str, date | None, str] | None = None
    # Problems under a heading already reported would only repeat it.
    quiet: bool = False

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(line, message))

    def unreadable(self, number: int, message: str) -> None:
        """A heading that says nothing reliable: what follows it is not reported too."""
        self.problem(number, message)
        self.quiet = True

    def read(self, text: str) -> Changelog:
        # Split on "\n" only: str.splitlines also breaks at form feeds and U+2028,
        # which would put line numbers out of step with editors and Git.
        for number, raw in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
            self.line(number, raw.rstrip())
        self.close_bullet()
        if not self.headings:
            self.problem(0, self.nothing_message())
        self.problems.sort(key=lambda p: p.line)
        return Changelog(tuple(self.entries), tuple(self.problems))

    def line(self, number: int, line: str) -> None:
        if not line:
            self.close_bullet()
            return
        text = line.lstrip(" \t")
        # Tabs only widen the indentation; inside the text they stay as written.
        indent = len(line[: len(line) - len(text)].expandtabs(4))
        if self.bullet is not None and indent >= 2:
            self.bullet.parts.append(text.strip())
            return
        self.close_bullet()
        heading = _HEADING.fullmatch(line) if indent == 0 else None
        # "#42 fixed" is text; "##1.2.0" is a version heading written badly.
        if heading and (len(heading["marks"]) > 1 or heading["rest"][:1] in ("", " ", "\t")):
            self.heading(number, line, len(heading["marks"]))
        elif indent == 0 and (bullet := _BULLET.fullmatch(line)):
            self.open_bullet(number, bullet["text"] or "")
        elif _LINK_DEFINITION.fullmatch(text) or _COMMENT.fullmatch(text):
            pass
        elif self.headings and not self.quiet:
            self.stray(number, text.strip(), indented=indent > 0)
        # Before the first heading: free prose.

    def open_bullet(self, number: int, text: str) -> None:
        flagged = False
        if self.place is None and not self.quiet:
            self.problem(number, self.orphan_message())
            flagged = True
        place = None if self.quiet else self.place
        self.bullet = _Bullet(number, [text.strip()], place, flagged or self.quiet)

    def close_bullet(self) -> None:
        bullet, self.bullet = self.bullet, None
        if bullet is None:
            return
        text = " ".join(p for p in bullet.parts if p)
        if not text:
            if not bullet.flagged:
                self.problem(bullet.line, "empty bullet: expected '- ' followed by the change")
            return
        if bullet.place is not None:
            version, released, section = bullet.place
            self.entries.append(Entry(version, released, section, text, bullet.line))

    def heading(self, number: int, line: str, level: int) -> None:
        if level == 1:
            if self.headings:
                self.problem(
                    number,
                    f"expected the '# ' title only at the top, before the first version, "
                    f"got {_quote(line)}",
                )
        elif level == 2:
            self.headings += 1
            self.quiet = False
            self.place = None
            self.version(number, line)
        else:
            self.subheading(number, line, level)

    # The styles' own parts.

    @abc.abstractmethod
    def nothing_message(self) -> str: ...

    @abc.abstractmethod
    def orphan_message(self) -> str: ...

    @abc.abstractmethod
    def version(self, number: int, line: str) -> None: ...

    @abc.abstractmethod
    def subheading(self, number: int, line: str, level: int) -> None: ...

    @abc.abstractmethod
    def stray(self, number: int, text: str, *, indented: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class _Version:
    name: str
    released: date | None
    heading: str
    sections: dict[str, int] = field(default_factory=dict)  # name -> line


@dataclass(slots=True)
class _KeepAChangelogReader(_Reader):
    current: _Version | None = None
    seen: dict[str, int] = field(default_factory=dict)  # version -> line
    first_released: tuple[str, int] | None = None  # heading and line

    def nothing_message(self) -> str:
        return f"no versions: expected {VERSION_FORM}"

    def orphan_message(self) -> str:
        if self.current is None:
            return f"bullet outside any section: expected {VERSION_FORM} and '### Added' above it"
        return (
            f"bullet outside any section: expected '### Added' (or another section) "
            f"under {_quote(self.current.heading)} above it"
        )

    def version(self, number: int, line: str) -> None:
        self.current = None
        match = _VERSION.fullmatch(line)
        name = (match["bracketed"] or match["bare"] or "").strip() if match else ""
        if match and name.lower() == UNRELEASED.lower():
            self.unreleased(number, line, match["date"] is not None or bool(match["yanked"]))
            return
        if not match or not _SEMVER.fullmatch(name):
            self.unreadable(number, f"expected {VERSION_FORM}, got {_quote(line)}")
            return
        released: date | None = None
        if match["date"] is None:
            self.problem(
                number, f"version {name} has no release date: expected '## [{name}] - YYYY-MM-DD'"
            )
        else:
            real = _real_date(match["date"])
            if isinstance(real, str):
                self.problem(number, real)
            else:
                released = real
        if name in self.seen:
            self.problem(
                number,
                f"version {name} appears twice (first at line {self.seen[name]}): "
                "expected each version once",
            )
        self.seen.setdefault(name, number)
        self.first_released = self.first_released or (line, number)
        self.current = _Version(name, released, line)

    def unreleased(self, number: int, line: str, dated: bool) -> None:
        if dated:
            self.problem(
                number,
                f"an unreleased version has no date or [YANKED]: expected '## [Unreleased]', "
                f"got {_quote(line)}",
            )
        if UNRELEASED in self.seen:
            self.problem(
                number,
                f"a second '## [Unreleased]' (first at line {self.seen[UNRELEASED]}): "
                "expected at most one",
            )
        elif self.first_released is not None:
            heading, at = self.first_released
            self.problem(
                number,
                f"'## [Unreleased]' after {_quote(heading)} at line {at}: "
                "expected Unreleased first, above every released version",
            )
        self.seen.setdefault(UNRELEASED, number)
        self.current = _Version(UNRELEASED, None, line)

    def subheading(self, number: int, line: str, level: int) -> None:
        if level > 3:
            if self.headings and not self.quiet:
                self.problem(
                    number,
                    f"expected a bullet, '## ' version or '### ' section, got {_quote(line)}",
                )
            return
        self.place = None
        name = line[3:].strip()
        if self.current is None:
            if not self.quiet:
                self.problem(
                    number,
                    f"section {_quote(line)} outside a version: expected {VERSION_FORM} above it",
                )
                # Its bullets were already explained by this problem.
                self.quiet = True
            return
        self.quiet = False
        section = _section_named(name)
        if section is None or not line.startswith("### "):
            self.problem(
                number,
                f"expected {SECTION_FORM}, got {_quote(line)}{_suggestion(name, '### ')}",
            )
            self.quiet = True
            return
        first = self.current.sections.setdefault(section, number)
        if first != number:
            self.problem(
                number,
                f"'### {section}' appears twice in {self.current.name} (first at line {first}): "
                "expected each section once per version",
            )
        self.place = (self.current.name, self.current.released, section)

    def stray(self, number: int, text: str, *, indented: bool) -> None:
        if self.place is not None:
            section = self.place[2]
            hint = "; a continuation must follow its bullet directly" if indented else ""
            self.problem(
                number,
                f"expected a bullet ('- text') under '### {section}', got {_quote(text)}{hint}",
            )
        elif self.current is not None:
            self.problem(
                number,
                f"expected a section such as '### Added' under {_quote(self.current.heading)}, "
                f"got {_quote(text)}",
            )
        else:
            # Between a misplaced section's problem and the next version: already said.
            pass


@dataclass(slots=True)
class _DatedReader(_Reader):
    heading_text: str | None = None  # the current heading, when readable

    def nothing_message(self) -> str:
        return f"no headings: expected {DATED_FORM}"

    def orphan_message(self) -> str:
        return f"bullet before any heading: expected {DATED_FORM} above it"

    def version(self, number: int, line: str) -> None:
        self.heading_text = None
        match = _DATED.fullmatch(line)
        if not match:
            self.unreadable(
                number, f"expected {DATED_FORM} (Type: {TYPE_FORM}), got {_quote(line)}"
            )
            return
        real = _real_date(match["date"])
        if isinstance(real, str):
            self.unreadable(number, real)
            return
        section = _section_named(match["type"])
        if section is None:
            self.unreadable(
                number,
                f"expected the type to be {TYPE_FORM}, got {_quote(match['type'])}"
                f"{_suggestion(match['type'])}",
            )
            return
        self.heading_text = line
        self.place = (f"{match['date']} - {match['name']}", real, section)

    def subheading(self, number: int, line: str, level: int) -> None:
        self.problem(
            number, f"expected {DATED_FORM}; this style has no '###' sections, got {_quote(line)}"
        )

    def stray(self, number: int, text: str, *, indented: bool) -> None:
        if self.heading_text is None:
            return
        hint = "; a continuation must follow its bullet directly" if indented else ""
        self.problem(
            number,
            f"expected a bullet ('- text') under {_quote(self.heading_text)}, "
            f"got {_quote(text)}{hint}",
        )
