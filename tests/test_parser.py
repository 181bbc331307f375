"""The one grammar: words, quotes, durations."""

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calcifer_bot.errors import UsageError
from calcifer_bot.parser import counted, format_duration, parse_duration, quote, tokenize


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("status", ["status"]),
        ("  endpoint   list  ", ["endpoint", "list"]),
        ('mute nas 2h "disk swap, back soon"', ["mute", "nas", "2h", "disk swap, back soon"]),
        ("work note 3 'it''s fine'", ["work", "note", "3", "its fine"]),
        ("git commit “fix the thing”", ["git", "commit", "fix the thing"]),  # Slack's smart quotes
        ("work note 3 ‘single smart’", ["work", "note", "3", "single smart"]),
        ("endpoint add web http --port=8443", ["endpoint", "add", "web", "http", "--port=8443"]),
        ("notify test #ops", ["notify", "test", "#ops"]),
        ("git merge x —yes –into main", ["git", "merge", "x", "--yes", "--into", "main"]),
        (
            "work note 1 a — b",
            ["work", "note", "1", "a", "—", "b"],
        ),  # a lone dash is prose  # '#' is not a comment in chat
        ("", []),
    ],
)
def test_tokenize(text: str, words: list[str]) -> None:
    assert tokenize(text) == words


@pytest.mark.parametrize("text", ['mute nas "forever', "git commit 'half"])
def test_unclosed_quote_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="quote is not closed"):
        tokenize(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("7d", 604800),
        ("1w", 604800),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("2H", 7200),
        ("0s", 0),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("90", "did you mean 90s"),
        ("ten minutes", "like 90s"),
        ("5x", "like 90s"),
        ("h", "like 90s"),
        ("1h 30m", "like 90s"),
        ("-5m", "like 90s"),
        ("", "like 90s"),
    ],
)
def test_bad_duration_says_what_is_expected(text: str, hint: str) -> None:
    with pytest.raises(ValueError, match=hint):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (45, "45s"), (90, "1m 30s"), (3600, "1h"), (93784, "1d 2h")],
)
def test_format_duration(seconds: int, shown: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == shown


SMART_QUOTES = "“”„‘’‚"


@given(st.lists(st.text(min_size=1).filter(lambda w: not set(w) & set(SMART_QUOTES)), max_size=5))
def test_quote_round_trips_any_word(words: list[str]) -> None:
    assert tokenize(" ".join(quote(w) for w in words)) == words


def test_counted_says_one_or_many_in_english() -> None:
    assert counted(1, "entry") == "1 entry"
    assert [counted(2, w) for w in ("entry", "day", "success", "note")] == [
        "2 entries",
        "2 days",
        "2 successes",
        "2 notes",
    ]
