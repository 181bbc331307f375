"""The one command grammar: words, quoted strings, ``--flag value``, durations."""

from __future__ import annotations

import re
import shlex
from datetime import timedelta

from calcifer_bot.errors import UsageError

# Chat clients turn straight quotes into typographic ones as people type.
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "‚": "'"})
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def tokenize(text: str) -> list[str]:
    """Split a message into words, honouring quotes; raises UsageError on an open quote."""
    lexer = shlex.shlex(text.translate(_QUOTES), posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""  # '#' is an ordinary character in chat (channels, issue numbers)
    try:
        words = list(lexer)
    except ValueError:
        raise UsageError("a quote is not closed; put the closing quote in and try again") from None
    # Smart dashes turn "--yes" into "—yes": a leading dash of either kind means a flag.
    return [f"--{w[1:]}" if w[:1] in "—–" and len(w) > 1 else w for w in words]


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``7d``, ``1w``, or combined like ``1h30m``."""
    value = text.strip().lower()
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        hint = f"; did you mean {value}s?" if value.isdigit() else ""
        raise ValueError(f"expected a duration like 90s, 15m, 2h or 7d{hint}")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def format_duration(delta: timedelta) -> str:
    """The reverse of :func:`parse_duration`, largest units first: ``1h 30m``."""
    seconds = round(delta.total_seconds())
    if seconds < 1:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return " ".join(out[:2])


def counted(n: int, noun: str) -> str:
    """``1 endpoint``, ``3 endpoints``, ``2 successes``, ``2 entries``."""
    if n == 1:
        return f"1 {noun}"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "o", "u"):
        return f"{n} {noun[:-1]}ies"
    return f"{n} {noun}es" if noun.endswith("s") else f"{n} {noun}s"


def quote(word: str) -> str:
    """Quote a word so :func:`tokenize` gives it back unchanged."""
    return shlex.quote(word)
