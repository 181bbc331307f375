"""Reply → Block Kit: what a Slack user sees, and what Slack would refuse.

Slack answers ``invalid_blocks`` (the reply never appears) when a block breaks
one of its limits, and truncates or drops what is too long for a message; the
tests below hold every message :func:`render` produces to those limits and
check that nothing a handler wrote goes missing on the way.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.slack_blocks import (
    ACTION_PREFIX,
    BLOCKS,
    BUTTON_TEXT,
    BUTTON_VALUE,
    BUTTONS,
    COLOURS,
    CONTEXT_TEXT,
    DISMISS,
    EMOJI,
    FIELD_TEXT,
    FIELDS,
    HEADER_TEXT,
    MAX_MESSAGES,
    MESSAGE_CHARS,
    SECTION_TEXT,
    Rendered,
    SlackMessage,
    button_element,
    escape,
    mrkdwn,
    plain_text,
    render,
    split_text,
)
from calcifer_bot.reply import Attachment, Button, Field, Reply, Status
from tests import strategies
from tests.strategies import UNTICKED

Block = dict[str, Any]

# --- what Slack checks ---------------------------------------------------------------


def all_blocks(message: SlackMessage) -> list[Block]:
    return [*message.blocks, *(b for a in message.attachments for b in a["blocks"])]


def violations(message: SlackMessage) -> list[str]:
    """Every way ``message`` breaks a Slack limit, as readable strings (empty when valid)."""
    found: list[str] = []
    blocks = all_blocks(message)
    if len(blocks) > BLOCKS:
        found.append(f"BLOCKS: {len(blocks)} blocks")
    if not message.text:
        found.append("MESSAGE_CHARS: empty fallback text")
    if len(message.text) > MESSAGE_CHARS:
        found.append(f"MESSAGE_CHARS: fallback of {len(message.text)}")
    action_ids: list[str] = []
    for block in blocks:
        kind = block["type"]
        if kind == "section":
            if "text" in block and not 0 < len(block["text"]["text"]) <= SECTION_TEXT:
                found.append(f"SECTION_TEXT: section of {len(block['text']['text'])}")
            fields = block.get("fields", [])
            if len(fields) > FIELDS:
                found.append(f"FIELDS: {len(fields)} fields in a section")
            found += [
                f"FIELD_TEXT: field of {len(f['text'])}"
                for f in fields
                if len(f["text"]) > FIELD_TEXT
            ]
        elif kind == "header":
            if len(block["text"]["text"]) > HEADER_TEXT:
                found.append(f"HEADER_TEXT: header of {len(block['text']['text'])}")
        elif kind == "context":
            found += [
                f"CONTEXT_TEXT: context of {len(e['text'])}"
                for e in block["elements"]
                if len(e["text"]) > CONTEXT_TEXT
            ]
        elif kind == "actions":
            buttons = block["elements"]
            if len(buttons) > BUTTONS:
                found.append(f"BUTTONS: {len(buttons)} in an actions block")
            for button in buttons:
                if not 0 < len(button["text"]["text"]) <= BUTTON_TEXT:
                    found.append(f"BUTTON_TEXT: label of {len(button['text']['text'])}")
                if len(button.get("value", "")) > BUTTON_VALUE:
                    found.append(f"BUTTON_VALUE: value of {len(button['value'])}")
                action_ids.append(button["action_id"])
        else:
            found.append(f"unexpected block type {kind!r}")
    found += [f"action_id {a!r} used {n} times" for a, n in Counter(action_ids).items() if n > 1]
    return found


def section_texts(message: SlackMessage) -> list[str]:
    return [b["text"]["text"] for b in message.blocks if b["type"] == "section" and "text" in b]


def mrkdwn_texts(message: SlackMessage) -> list[str]:
    """Everything Slack parses as mrkdwn: section texts, fields and context lines."""
    texts: list[str] = []
    for block in all_blocks(message):
        if block["type"] == "section":
            texts += [block["text"]["text"]] if "text" in block else []
            texts += [f["text"] for f in block.get("fields", [])]
        elif block["type"] == "context":
            texts += [e["text"] for e in block["elements"]]
    return texts


def context_texts(message: SlackMessage) -> list[str]:
    return [e["text"] for b in all_blocks(message) if b["type"] == "context" for e in b["elements"]]


def squeezed(text: str) -> str:
    # Cuts add newlines (hard-split lines) and ``` pairs (reopened code blocks), and blank
    # pieces are left out; with whitespace gone, added fences only lengthen backtick runs
    # by three, so removing every ``` leaves the same string when nothing was lost.
    return re.sub(r"\s+", "", text).replace("```", "")


def assert_within_limits(rendered: Rendered) -> None:
    assert 1 <= len(rendered.messages) <= MAX_MESSAGES
    for message in rendered.messages:
        assert violations(message) == []
    for continuation in rendered.messages[1:]:
        assert continuation.attachments == []
        assert sum(map(len, section_texts(continuation))) <= MESSAGE_CHARS


def assert_nothing_lost(reply: Reply, rendered: Rendered) -> None:
    if rendered.file is not None:
        assert rendered.file.content == plain_text(reply).encode()
        assert rendered.file.content_type == "text/plain"
        return
    shown = squeezed("".join(t for m in rendered.messages for t in section_texts(m)))
    lead = squeezed(EMOJI[reply.status])
    if lead and not reply.title and shown:
        assert shown.startswith(lead), "the status emoji leads a reply without a title"
        shown = shown[len(lead) :]
    assert shown == squeezed(mrkdwn(reply.text))


# --- strategies ------------------------------------------------------------------------


# Slack's three control characters, Markdown, emoji and non-BMP text, never a newline.
CHARS = strategies.characters("&<>*`_~ ")
LINE = strategies.lines(CHARS, "<!channel> & <@U123>")
TEXT = st.lists(LINE, max_size=30).map("\n".join)
SHORT = strategies.shorts(CHARS, 500)
REPLY = strategies.replies(TEXT, SHORT, strategies.buttons(CHARS, ""))
# Replies that are only text (with something to say), for the property that passes today.
TEXT_REPLY = st.builds(
    Reply,
    text=TEXT.filter(str.strip),
    title=st.none() | SHORT,
    status=st.sampled_from(Status),
)


# --- properties ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(REPLY)
def test_any_reply_renders_within_every_slack_limit(reply: Reply) -> None:
    rendered = render(reply)
    assert_within_limits(rendered)
    assert_nothing_lost(reply, rendered)


@settings(max_examples=80, deadline=None)
@given(TEXT_REPLY)
def test_text_replies_keep_every_line_and_stay_within_the_limits(reply: Reply) -> None:
    rendered = render(reply)
    assert_within_limits(rendered)
    assert_nothing_lost(reply, rendered)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(strategies.lines(UNTICKED).filter(lambda s: "```" not in s)).map("\n".join),
    st.integers(20, 400),
)
def test_split_text_pieces_fit_the_limit_and_keep_the_text(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert all(len(p) <= limit for p in pieces)
    assert squeezed("".join(pieces)) == squeezed(text)


@settings(max_examples=80, deadline=None)
@given(st.lists(strategies.lines(UNTICKED), max_size=30), st.integers(20, 400))
def test_split_text_closes_and_reopens_code_blocks(rows: list[str], limit: int) -> None:
    text = "\n".join(rows)
    if text.count("```") % 2:
        text += "\n```"  # a handler's code block is closed; only the cuts may open one
    pieces = split_text(text, limit)
    assert [p for p in pieces if p.count("```") % 2] == []
    assert squeezed("".join(pieces)) == squeezed(text)


# --- escaping --------------------------------------------------------------------------


def test_escape_neutralises_slacks_control_characters() -> None:
    assert escape("<!channel> R&D <@U123>") == "&lt;!channel&gt; R&amp;D &lt;@U123&gt;"
    # & goes first, or the entities just written would be escaped again.
    assert escape("&lt;") == "&amp;lt;"


def test_mrkdwn_turns_markdown_bold_into_slack_bold() -> None:
    assert mrkdwn("**nas** is down, `ping nas` & see <docs>") == (
        "*nas* is down, `ping nas` &amp; see &lt;docs&gt;"
    )


def test_a_users_channel_ping_in_a_reply_does_not_ping_the_channel() -> None:
    reply = Reply(
        text="Muted <!channel> & <!here>",
        fields=(Field("<!everyone>", "<!channel>"), Field("Note", "<!here>", inline=False)),
        footer="by <!subteam^S123>",
    )
    shown = mrkdwn_texts(render(reply).first)
    assert len(shown) == 4
    assert not [t for t in shown if "<" in t]
    assert "&lt;!channel&gt;" in shown[0]


# --- split_text ------------------------------------------------------------------------


def test_split_text_cuts_at_line_ends_when_lines_are_short() -> None:
    rows = [f"probe {i:03} ok in {i % 97} ms" for i in range(200)]
    pieces = split_text("\n".join(rows), 500)
    assert len(pieces) > 1
    assert all(len(p) <= 500 for p in pieces)
    assert [row for p in pieces for row in p.split("\n")] == rows


def test_split_text_closes_a_cut_code_block_and_reopens_it_in_the_next_piece() -> None:
    code = [f"    line {i}: value = {i * i}" for i in range(60)]
    text = "Output:\n```\n" + "\n".join(code) + "\n```\nDone."
    pieces = split_text(text, 300)
    assert len(pieces) > 2
    for piece in pieces:
        assert len(piece) <= 300
        assert piece.count("```") % 2 == 0
    assert all(p.startswith("```\n") for p in pieces[1:-1])
    assert [line for p in pieces for line in p.split("\n") if line != "```"] == [
        line for line in text.split("\n") if line != "```"
    ]


def test_split_text_hard_splits_a_line_longer_than_the_limit() -> None:
    pieces = split_text("x" * 1000, 100)
    assert all(len(p) <= 100 for p in pieces)
    assert "".join(pieces).replace("\n", "") == "x" * 1000


def test_split_text_of_nothing_is_one_empty_piece() -> None:
    assert split_text("", 3000) == [""]


def test_split_text_piece_whose_last_line_opens_a_code_block_fits_the_limit() -> None:
    # 10 + 1 + 5 + 1 + 3 = 20 characters: exactly full when the fence opens.
    pieces = split_text("a" * 10 + "\n" + "a" * 5 + "\n```\ncode", 20)
    assert all(len(p) <= 20 for p in pieces), pieces


def test_a_code_block_opening_at_a_section_boundary_is_not_refused_by_slack() -> None:
    text = "a" * 2000 + "\n" + "a" * 995 + "\n```\n" + "traceback line\n" * 40 + "```"
    assert_within_limits(render(Reply(text=text)))


@pytest.mark.parametrize("status", [Status.OK, Status.WARNING, Status.ERROR])
def test_a_long_untitled_status_reply_is_not_refused_by_slack(status: Status) -> None:
    text = "\n".join(f"step {i:02}: " + "output " * 9 for i in range(60))
    assert_within_limits(render(Reply(text=text, status=status)))


# --- title, status and colour ----------------------------------------------------------


@pytest.mark.parametrize("status", list(Status))
def test_the_title_is_a_header_led_by_the_status_emoji(status: Status) -> None:
    first = render(Reply(text="3 endpoints", title="Monitoring", status=status)).first
    header = first.blocks[0]
    assert header["type"] == "header"
    assert header["text"]["type"] == "plain_text"
    assert header["text"]["text"] == EMOJI[status] + "Monitoring"
    assert section_texts(first) == ["3 endpoints"]


def test_an_untitled_error_leads_its_text_with_the_emoji() -> None:
    first = render(Reply.error("No endpoint called `nas`.")).first
    assert section_texts(first) == [EMOJI[Status.ERROR] + "No endpoint called `nas`."]


def test_a_long_title_is_cut_to_fit_a_header() -> None:
    first = render(Reply(text="x", title="t" * 500, status=Status.WARNING)).first
    assert len(first.blocks[0]["text"]["text"]) <= HEADER_TEXT
    assert first.blocks[0]["text"]["text"].startswith(EMOJI[Status.WARNING])


@pytest.mark.parametrize("inline", [True, False])
def test_an_error_with_fields_shows_a_red_bar(inline: bool) -> None:
    reply = Reply(
        "nas is down",
        title="Alert",
        status=Status.ERROR,
        fields=(Field("Error", "timeout", inline),),
    )
    attachments = render(reply).first.attachments
    assert len(attachments) == 1
    assert attachments[0]["color"] == COLOURS[Status.ERROR]


def test_ok_and_error_bars_differ() -> None:
    fields = (Field("Latency", "12 ms"),)
    ok = render(Reply("nas is up", status=Status.OK, fields=fields)).first.attachments[0]
    error = render(Reply("nas is down", status=Status.ERROR, fields=fields)).first.attachments[0]
    assert ok["color"] == COLOURS[Status.OK] != error["color"]


def test_inline_fields_are_paired_sections_of_at_most_ten() -> None:
    reply = Reply("status", fields=tuple(Field(f"ep{i}", "up") for i in range(23)))
    blocks = render(reply).first.attachments[0]["blocks"]
    assert [len(b["fields"]) for b in blocks] == [10, 10, 3]
    assert blocks[0]["fields"][0]["text"] == "*ep0*\nup"


def test_a_footer_is_a_context_line_in_the_attachment() -> None:
    reply = Reply("nas is down", footer="since 12:00 <UTC>")
    assert context_texts(render(reply).first) == ["since 12:00 &lt;UTC&gt;"]


# --- buttons ---------------------------------------------------------------------------


def test_a_button_without_a_command_dismisses() -> None:
    element = button_element(3, Button("Cancel", None))
    assert element is not None
    assert element["action_id"].startswith(DISMISS)
    assert "value" not in element, "nothing to run"
    assert "style" not in element


@pytest.mark.parametrize("style", ["primary", "danger"])
def test_a_button_carries_its_command_and_style(style: Literal["primary", "danger"]) -> None:
    element = button_element(2, Button("Acknowledge", "ack 17", style))
    assert element is not None
    assert element["action_id"] == f"{ACTION_PREFIX}2"
    assert element["value"] == "ack 17"
    assert element["style"] == style
    assert element["text"]["text"] == "Acknowledge"


def test_a_long_label_is_cut_to_fit() -> None:
    element = button_element(0, Button("L" * 200, "check nas"))
    assert element is not None
    assert len(element["text"]["text"]) <= BUTTON_TEXT


def test_a_button_whose_command_is_too_long_is_dropped_not_truncated() -> None:
    # A truncated command would run something other than what the button says.
    assert button_element(0, Button("Run", "x" * (BUTTON_VALUE + 1))) is None
    kept = button_element(0, Button("Run", "x" * BUTTON_VALUE))
    assert kept is not None
    assert kept["value"] == "x" * BUTTON_VALUE


def test_buttons_get_unique_action_ids_and_their_commands() -> None:
    reply = Reply(
        "Delete endpoint nas?",
        buttons=(
            Button("Confirm", "endpoint remove nas --yes", "danger"),
            Button("Cancel", None),
            Button("Too long", "x" * (BUTTON_VALUE + 1)),
            Button("Check", "check nas"),
        ),
    )
    message = render(reply).first
    actions = [b for b in all_blocks(message) if b["type"] == "actions"]
    assert len(actions) == 1
    shown = [(e["text"]["text"], e.get("value"), e.get("style")) for e in actions[0]["elements"]]
    assert shown == [
        ("Confirm", "endpoint remove nas --yes", "danger"),
        ("Cancel", None, None),
        ("Check", "check nas", None),
    ]
    ids = [e["action_id"] for e in actions[0]["elements"]]
    assert ids[1].startswith(DISMISS)
    assert len(set(ids)) == 3
    assert all(i.startswith(ACTION_PREFIX) for i in ids)
    assert violations(message) == []


def test_two_dismiss_buttons_do_not_share_an_action_id() -> None:
    reply = Reply("Mute nas?", buttons=(Button("Not now", None), Button("Never", None)))
    assert violations(render(reply).first) == []


# --- long replies ----------------------------------------------------------------------


def log_lines(chars: int) -> str:
    line = "2024-05-01T12:00:00Z probe nas http 200 in 12.3 ms & <ok>"
    return "\n".join(line for _ in range(chars // (len(line) + 1)))


def test_a_long_reply_continues_in_the_thread() -> None:
    reply = Reply(log_lines(10_000), title="Probe log")
    rendered = render(reply)
    assert rendered.file is None
    assert 2 <= len(rendered.messages) <= MAX_MESSAGES
    assert context_texts(rendered.first) == ["Continued in the thread."]
    for message in rendered.messages:
        assert sum(map(len, section_texts(message))) <= MESSAGE_CHARS
        assert violations(message) == []
    assert_nothing_lost(reply, rendered)


def test_a_very_long_reply_travels_as_a_file() -> None:
    reply = Reply(log_lines(60_000), title="Probe log", status=Status.WARNING)
    rendered = render(reply)
    assert len(rendered.messages) == 1
    assert isinstance(rendered.file, Attachment)
    assert rendered.file.content_type == "text/plain"
    assert rendered.file.content.decode() == plain_text(reply)
    assert any("attached file" in t for t in context_texts(rendered.first))
    assert violations(rendered.first) == []


# --- light replies and message arguments -----------------------------------------------


def test_a_short_answer_is_one_section_and_nothing_else() -> None:
    rendered = render(Reply("pong"))
    assert len(rendered.messages) == 1
    assert rendered.file is None
    assert rendered.first.blocks == [
        {"type": "section", "text": {"type": "mrkdwn", "text": "pong"}}
    ]
    assert rendered.first.attachments == []
    assert rendered.first.text == "pong"


@pytest.mark.parametrize("text", ["", " \n "])
def test_an_empty_reply_still_has_a_fallback(text: str) -> None:
    assert render(Reply(text)).first.text.strip()


def test_kwargs_always_carry_attachments() -> None:
    # chat.update keeps the old attachment (an alert's buttons) unless given an empty list.
    assert SlackMessage("Resolved").kwargs() == {
        "text": "Resolved",
        "blocks": [],
        "attachments": [],
    }
    resolved = render(Reply("nas is up again", status=Status.OK)).first.kwargs()
    assert resolved["attachments"] == []
    assert resolved["text"] == "nas is up again"
