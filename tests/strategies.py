"""Hypothesis strategies for platform-neutral Replies, shared by the renderers' tests.

Each platform's test passes the characters that matter to it (Slack's ``&<>``,
Discord's ``|>``) and the sizes its limits make interesting.
"""

from __future__ import annotations

from hypothesis import strategies as st

from calcifer_bot.reply import Button, Field, Reply, Status

# Without backticks in ordinary lines, fences come only from whole ``` lines: a hard split
# through a run of backticks would change how many fences a line holds.
UNTICKED = st.characters(codec="utf-8", exclude_characters="\n`")


def characters(specials: str) -> st.SearchStrategy[str]:
    """Any text but a newline, with the platform's own special characters made likely."""
    return st.characters(codec="utf-8", exclude_characters="\n") | st.sampled_from(specials)


def lines(chars: st.SearchStrategy[str], *samples: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(chars, max_size=60),
        st.sampled_from(["", "```", "```python", "**bold** & `x`", *samples]),
        # Long lines (logs, JSON) that must be hard-split; built by repetition to stay cheap.
        st.builds(lambda s, n: s * n, st.text(chars, min_size=1, max_size=8), st.integers(1, 900)),
    )


def texts(chars: st.SearchStrategy[str], *samples: str) -> st.SearchStrategy[str]:
    return st.lists(lines(chars, *samples), max_size=30).map("\n".join)


def shorts(chars: st.SearchStrategy[str], longest: int) -> st.SearchStrategy[str]:
    """Mostly short strings, sometimes one past a limit (a repeated run up to ``longest``)."""
    return st.text(chars, max_size=40) | st.builds(
        lambda s, n: s * n, st.text(chars), st.integers(0, longest)
    )


def buttons(chars: st.SearchStrategy[str], long_command: str) -> st.SearchStrategy[Button]:
    return st.builds(
        Button,
        st.text(chars, min_size=1, max_size=100),
        st.none()
        | st.text(chars, max_size=30)
        | st.builds(lambda n: long_command + "x" * n, st.integers(0, 2500)),
        st.sampled_from(["default", "primary", "danger"]),
    )


def replies(
    text: st.SearchStrategy[str],
    short: st.SearchStrategy[str],
    button: st.SearchStrategy[Button],
    **more: st.SearchStrategy[object],
) -> st.SearchStrategy[Reply]:
    return st.builds(
        Reply,
        text=text,
        title=st.none() | short,
        status=st.sampled_from(Status),
        fields=st.lists(st.builds(Field, short, short | text, st.booleans()), max_size=40).map(
            tuple
        ),
        footer=st.none() | short,
        buttons=st.lists(button, max_size=30).map(tuple),
        **more,
    )
