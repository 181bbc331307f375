"""Text helpers every renderer shares: cutting, splitting at line ends, plain text.

Platform-neutral on purpose: each platform's module (:mod:`adapters.slack_blocks`,
:mod:`adapters.discord_embeds`) applies its own limits through these.
"""

from __future__ import annotations

from collections.abc import Iterator

from calcifer_bot.reply import Reply


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def split_text(text: str, limit: int) -> list[str]:
    """Pieces of at most ``limit`` characters, cut at line ends where possible.

    A ``` code block that spans a cut is closed and reopened, so each piece
    renders on its own.
    """
    pieces: list[str] = []
    current = ""
    fenced = False
    for line in _lines(text, limit - 8):  # room for the fences added below
        candidate = f"{current}\n{line}" if current else line
        toggles = line.count("```") % 2 == 1
        # A piece that ends inside a code block needs room for the closing fence.
        closing = 4 if fenced != toggles else 0
        if len(candidate) + closing > limit and current:
            pieces.append(current + ("\n```" if fenced else ""))
            current = ("```\n" if fenced else "") + line
        else:
            current = candidate
        if toggles:
            fenced = not fenced
    if current or not pieces:
        pieces.append(current)
    return pieces


def _lines(text: str, limit: int) -> Iterator[str]:
    for line in text.split("\n"):
        while len(line) > limit:
            yield line[:limit]
            line = line[limit:]
        yield line


def plain_text(reply: Reply) -> str:
    """The reply as plain text: the fallback, and the content of an overflow file."""
    lines = [reply.title] if reply.title else []
    lines.append(reply.text)
    lines += [f"{f.name}: {f.value}" for f in reply.fields]
    if reply.footer:
        lines.append(reply.footer)
    return "\n".join(line for line in lines if line)
