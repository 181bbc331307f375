"""The command registry: each command declares itself once, here.

From one declaration come argument parsing, the usage line, ``help``, the role
check, confirmation of hard-to-undo actions and the adapters' hint that a
command is slow (acknowledge first, then answer).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from calcifer_bot.errors import UsageError
from calcifer_bot.parser import parse_duration, tokenize
from calcifer_bot.reply import Command, Reply, Visibility
from calcifer_bot.roles import Role

if TYPE_CHECKING:
    from calcifer_bot.config import Settings
    from calcifer_bot.core import Core
    from calcifer_bot.db import Database


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

Progress = Callable[[str], Awaitable[None]]
Handler = Callable[..., Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument: positional by default, ``option`` for ``--name VALUE``,
    ``switch`` for a bare ``--name``, ``rest`` for "every remaining word"."""

    name: str
    help: str = ""
    parse: Callable[[str], Any] = str
    default: Any = REQUIRED
    option: bool = False
    switch: bool = False
    rest: bool = False
    metavar: str = ""

    @property
    def key(self) -> str:
        return self.name.replace("-", "_")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and not self.switch

    @property
    def label(self) -> str:
        if self.switch:
            return f"--{self.name}"
        if self.option:
            return f"--{self.name} {self.metavar or self.name.upper()}"
        return self.metavar or self.name.upper()

    def usage(self) -> str:
        label = f"{self.label}…" if self.rest else self.label
        return label if self.required and not self.option else f"[{label}]"

    def convert(self, word: str) -> Any:
        try:
            return self.parse(word)
        except ValueError as exc:
            raise UsageError(f"{self.label}: {exc}") from None


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    def parse(word: str) -> int:
        try:
            value = int(word)
        except ValueError:
            raise ValueError(f"expected a whole number, got {word!r}") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
            raise ValueError(f"expected a number {bounds}, got {value}")
        return value

    return parse


def choice(*values: str) -> Callable[[str], str]:
    def parse(word: str) -> str:
        if word.lower() not in values:
            raise ValueError(f"expected one of {', '.join(values)}, got {word!r}")
        return word.lower()

    return parse


duration = parse_duration


@dataclass(slots=True)
class Context:
    """What a handler gets besides its arguments. No platform objects in here."""

    command: Command
    role: Role
    role_source: str
    core: Core
    progress: Progress

    @property
    def settings(self) -> Settings:
        return self.core.settings

    @property
    def db(self) -> Database:
        return self.core.db

    @property
    def identity(self) -> str:
        return self.command.identity

    def now(self) -> datetime:
        return self.core.clock()


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    handler: Handler
    summary: str
    args: tuple[Arg, ...] = ()
    aliases: tuple[str, ...] = ()
    role: Role = Role.VIEWER
    confirm: bool = False  # side effects that are hard to undo: ask unless --yes
    slow: bool = False  # adapters acknowledge first and show "working…"
    visibility: Visibility = Visibility.CHANNEL
    examples: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return self.name.split()[0]

    @property
    def usage(self) -> str:
        return " ".join([self.name, *(arg.usage() for arg in self.args)])

    def bind(self, words: list[str]) -> dict[str, Any]:
        """Turn the words after the command name into handler keyword arguments."""
        named = {arg.name: arg for arg in self.args if arg.option or arg.switch}
        positional = [arg for arg in self.args if not (arg.option or arg.switch)]
        values: dict[str, Any] = {}
        loose: list[str] = []
        words = list(words)
        only_positional = False
        while words:
            word = words.pop(0)
            if only_positional or not word.startswith("--"):
                loose.append(word)
                continue
            if word == "--":  # everything after it is positional, even "--words"
                only_positional = True
                continue
            name, has_value, value = word[2:].partition("=")
            arg = named.get(name)
            if arg is None:
                raise UsageError(self._unknown_option(name))
            if arg.key in values:
                raise UsageError(f"--{name} is given twice")
            if arg.switch:
                if has_value:
                    raise UsageError(f"--{name} takes no value")
                values[arg.key] = True
                continue
            if not has_value:
                if not words:
                    raise UsageError(f"--{name} needs a value: {arg.label}")
                value = words.pop(0)
            values[arg.key] = arg.convert(value)

        for arg in positional:
            if arg.rest:
                if loose:
                    values[arg.key] = arg.convert(" ".join(loose))
                    loose = []
                    continue
            elif loose:
                values[arg.key] = arg.convert(loose.pop(0))
                continue
            if arg.required:
                raise UsageError(f"{arg.label} is missing")
            values[arg.key] = arg.default
        if loose:
            raise UsageError(f"unexpected {loose[0]!r}: {self.name} takes no more arguments")
        for arg in named.values():
            values.setdefault(arg.key, False if arg.switch else arg.default)
            if values[arg.key] is REQUIRED:
                raise UsageError(f"{arg.label} is required")
        return values

    def _unknown_option(self, name: str) -> str:
        options = [arg.name for arg in self.args if arg.option or arg.switch]
        close = difflib.get_close_matches(name, options, n=1)
        if close:
            return f"unknown option --{name}; did you mean --{close[0]}?"
        if options:
            return f"unknown option --{name}; {self.name} takes " + ", ".join(
                f"--{o}" for o in options
            )
        return f"unknown option --{name}; {self.name} takes no options"


class UnknownCommand(UsageError):
    def __init__(self, message: str, suggestion: Spec | None) -> None:
        super().__init__(message)
        self.suggestion = suggestion


@dataclass(slots=True)
class Registry:
    specs: dict[str, Spec] = field(default_factory=dict)

    def command(
        self,
        name: str,
        *,
        summary: str,
        args: Iterable[Arg] = (),
        aliases: Iterable[str] = (),
        role: Role = Role.VIEWER,
        confirm: bool = False,
        slow: bool = False,
        visibility: Visibility = Visibility.CHANNEL,
        examples: Iterable[str] = (),
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            spec = Spec(
                name=name,
                handler=handler,
                summary=summary,
                args=tuple(args),
                aliases=tuple(aliases),
                role=role,
                confirm=confirm,
                slow=slow,
                visibility=visibility,
                examples=tuple(examples),
            )
            if confirm:
                yes = Arg("yes", "skip the confirmation", switch=True)
                spec = replace(spec, args=(*spec.args, yes))
            self.add(spec)
            return handler

        return register

    def add(self, spec: Spec) -> None:
        taken = {n for s in self.specs.values() for n in (s.name, *s.aliases)}
        clash = {spec.name, *spec.aliases} & taken
        if clash:
            raise ValueError(f"command name already registered: {', '.join(sorted(clash))}")
        declared = {arg.key for arg in spec.args} - {"yes"}
        params = set(list(inspect.signature(spec.handler).parameters)[1:])
        if declared != params:
            raise ValueError(f"{spec.name}: handler parameters {params} != arguments {declared}")
        self.specs[spec.name] = spec

    def copy(self) -> Registry:
        return Registry(dict(self.specs))

    def visible(self, role: Role) -> list[Spec]:
        return sorted((s for s in self.specs.values() if s.role <= role), key=lambda s: s.name)

    def find(self, words: list[str]) -> tuple[Spec, list[str]] | None:
        """The longest command name (or alias) the words start with."""
        for length in range(min(len(words), 3), 0, -1):
            head = " ".join(words[:length]).lower()
            for spec in self.specs.values():
                if head == spec.name or head in spec.aliases:
                    return spec, words[length:]
        return None

    def lookup(self, text: str) -> Spec | None:
        """The command a message would run, without running it (for adapters)."""
        try:
            found = self.find(tokenize(text))
        except UsageError:
            return None
        return found[0] if found else None

    def resolve(self, words: list[str], role: Role) -> tuple[Spec, list[str]]:
        found = self.find(words)
        if found:
            return found
        raise self.unknown(words, role)

    def unknown(self, words: list[str], role: Role) -> UnknownCommand:
        visible = self.visible(role)
        group = [s for s in visible if s.group == words[0].lower() and " " in s.name]
        if group:  # "git frob": compare only the word after the group
            typed = " ".join(words[:2])
            attempt = words[1].lower() if len(words) > 1 else ""
            scored = [(_similarity(attempt, s.name.split(" ", 1)[1]), s.name, s) for s in group]
        else:
            typed = words[0]
            scored = [
                (_similarity(" ".join(words[: len(name.split())]).lower(), name), name, spec)
                for spec in visible
                for name in (spec.name, *spec.aliases)
            ]
        best = max(scored, default=None, key=lambda t: t[0])
        if best and best[0] >= 0.6:
            return UnknownCommand(f"unknown command {typed!r}; did you mean `{best[1]}`?", best[2])
        names = sorted({s.name for s in group} or {s.group for s in visible})
        return UnknownCommand(
            f"unknown command {typed!r}; did you mean one of: {', '.join(names)}? "
            "Type `help` for the list.",
            None,
        )


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


registry = Registry()
command = registry.command
