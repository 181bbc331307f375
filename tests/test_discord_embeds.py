"""Reply → Discord messages: what a Discord user sees, and what Discord would refuse.

Discord answers 400 Invalid Form Body (the reply never appears) when a message
breaks one of its limits; the tests below hold every message :func:`render`
produces to those limits, check that nothing a handler wrote goes missing on
the way, and that a button's custom id runs the command it was made for.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.discord_embeds import (
    BUTTON_LABEL,
    BUTTONS,
    COLOURS,
    CONTENT,
    CUSTOM_ID,
    DESCRIPTION,
    DISMISS_ID,
    EMBED_TOTAL,
    EMBEDS,
    EMOJI,
    EMPTY,
    FIELD_NAME,
    FIELD_VALUE,
    FIELDS,
    FILES,
    FOOTER,
    ID_PREFIX,
    MAX_MESSAGES,
    OVERFLOW_NOTE,
    TITLE,
    TOKEN_ID,
    DiscordMessage,
    Rendered,
    button_id,
    command_of,
    embed_size,
    render,
)
from adapters.text import plain_text
from calcifer_bot.reply import Attachment, Button, Field, Reply, Status
from tests import strategies
from tests.strategies import UNTICKED

Embed = dict[str, Any]
OVERFLOW_FILE = "calcifer-output.txt"

# --- what Discord checks ---------------------------------------------------------------


def counted(embed: Embed) -> int:
    """The characters Discord counts towards the 6000 of a message's embeds (its own sum)."""
    fields = embed.get("fields", [])
    return (
        len(embed.get("title", ""))
        + len(embed.get("description", ""))
        + len(embed.get("footer", {}).get("text", ""))
        + sum(len(f["name"]) + len(f["value"]) for f in fields)
    )


def is_empty(embed: Embed) -> bool:
    """Discord refuses an embed with nothing to show (a colour alone is not enough)."""
    return not any(embed.get(key) for key in ("title", "description", "fields", "footer", "image"))


def violations(message: DiscordMessage) -> list[str]:
    """Every way ``message`` breaks a Discord limit, as readable strings (empty when valid)."""
    found: list[str] = []
    if len(message.content) > CONTENT:
        found.append(f"CONTENT: content of {len(message.content)}")
    # Discord refuses content that is only whitespace as an empty message.
    if not message.content.strip() and not message.embeds:
        found.append("empty message: no content and no embed")
    if len(message.embeds) > EMBEDS:
        found.append(f"EMBEDS: {len(message.embeds)} embeds")
    total = sum(map(counted, message.embeds))
    if total > EMBED_TOTAL:
        found.append(f"EMBED_TOTAL: embeds of {total} characters")
    for embed in message.embeds:
        if is_empty(embed):
            found.append(f"empty embed {embed!r}")
        if len(embed.get("title", "")) > TITLE:
            found.append(f"TITLE: title of {len(embed['title'])}")
        if len(embed.get("description", "")) > DESCRIPTION:
            found.append(f"DESCRIPTION: description of {len(embed['description'])}")
        if len(embed.get("footer", {}).get("text", "")) > FOOTER:
            found.append(f"FOOTER: footer of {len(embed['footer']['text'])}")
        if counted(embed) > EMBED_TOTAL:
            found.append(f"EMBED_TOTAL: one embed of {counted(embed)}")
        fields = embed.get("fields", [])
        if len(fields) > FIELDS:
            found.append(f"FIELDS: {len(fields)} fields in an embed")
        for f in fields:
            if not 0 < len(f["name"]) <= FIELD_NAME:
                found.append(f"FIELD_NAME: name of {len(f['name'])}")
            if not 0 < len(f["value"]) <= FIELD_VALUE:
                found.append(f"FIELD_VALUE: value of {len(f['value'])}")
    if len(message.files) > FILES:
        found.append(f"FILES: {len(message.files)} files")
    if len(message.buttons) > BUTTONS:
        found.append(f"BUTTONS: {len(message.buttons)} buttons")
    for button in message.buttons:
        if len(button.label) > BUTTON_LABEL:
            found.append(f"BUTTON_LABEL: label of {len(button.label)}")
        if button.command is not None:
            custom_id = button_id(button.command)
            if custom_id is not None and len(custom_id) > CUSTOM_ID:
                found.append(f"CUSTOM_ID: id of {len(custom_id)}")
    return found


def all_embeds(rendered: Rendered) -> list[Embed]:
    return [e for m in rendered.messages for e in m.embeds]


def shown_texts(rendered: Rendered) -> list[str]:
    """What a reader sees as running text: every content and every description."""
    texts: list[str] = []
    for message in rendered.messages:
        texts += [message.content] if message.content else []
        texts += [e["description"] for e in message.embeds if "description" in e]
    return texts


def squeezed(text: str) -> str:
    # Cuts add newlines (hard-split lines) and ``` pairs (reopened code blocks), and blank
    # pieces are left out; with whitespace gone, added fences only lengthen backtick runs
    # by three, so removing every ``` leaves the same string when nothing was lost.
    return re.sub(r"\s+", "", text).replace("```", "")


def shortened(text: str, limit: int) -> str:
    """What a user should see of ``text`` in a place holding ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def overflowed(rendered: Rendered) -> bool:
    return rendered.first.content.endswith(OVERFLOW_NOTE)


def assert_within_limits(reply: Reply, rendered: Rendered) -> None:
    assert 1 <= len(rendered.messages) <= MAX_MESSAGES
    for message in rendered.messages:
        assert violations(message) == []
        assert all(e["color"] == COLOURS[reply.status] for e in message.embeds)
    for continuation in rendered.messages[1:]:
        assert continuation.buttons == ()
        assert continuation.files == ()
    assert [(b.label, b.command, b.style) for b in rendered.first.buttons] == [
        (shortened(b.label, BUTTON_LABEL), b.command, b.style) for b in reply.buttons[:BUTTONS]
    ]


def assert_nothing_lost(reply: Reply, rendered: Rendered) -> None:
    first = rendered.first
    # The reply's own files travel with the first message (the strategies keep them few).
    assert first.files[: len(reply.attachments)] == reply.attachments
    if overflowed(rendered):
        assert len(rendered.messages) == 1
        extra = first.files[len(reply.attachments) :]
        assert [f.filename for f in extra] == [OVERFLOW_FILE]
        assert extra[0].content == plain_text(reply).encode()
        assert extra[0].content_type == "text/plain"
        return
    assert [f.filename for f in first.files] == [a.filename for a in reply.attachments]
    shown = squeezed("".join(shown_texts(rendered)))
    if first.embeds:
        assert not first.content, "a rich reply's words are in its embeds"
        lead = "" if reply.title or not reply.text.strip() else squeezed(EMOJI[reply.status])
        assert shown == lead + squeezed(reply.text), "an untitled one leads with the emoji"
    elif not reply.text.strip():
        assert shown == "(notext)"
    else:
        lead = squeezed(EMOJI[reply.status])
        assert shown.startswith(lead), "the status emoji leads a plain reply"
        assert shown[len(lead) :] == squeezed(reply.text)
    if not first.embeds:
        return
    embeds = all_embeds(rendered)
    if reply.title:
        assert embeds[0]["title"] == shortened(EMOJI[reply.status] + reply.title, TITLE)
    assert [e for e in embeds[1:] if "title" in e] == []
    fields = [f for e in embeds for f in e.get("fields", [])]
    assert fields == [
        {
            "name": shortened(f.name, FIELD_NAME) if f.name.strip() else EMPTY,
            "value": shortened(f.value, FIELD_VALUE) if f.value.strip() else EMPTY,
            "inline": f.inline,
        }
        for f in reply.fields
    ]
    footers = [e["footer"]["text"] for e in embeds if "footer" in e]
    if reply.footer:
        assert footers == [shortened(reply.footer, FOOTER)]
        assert "footer" in embeds[-1], "the footer closes the reply"
    else:
        assert footers == []


def assert_fences_balanced(rendered: Rendered) -> None:
    for text in shown_texts(rendered):
        assert text.count("```") % 2 == 0, text


# --- strategies ------------------------------------------------------------------------


# Markdown, emoji and non-BMP text, never a newline.
CHARS = strategies.characters("*`_~|> ")
TEXT = strategies.texts(CHARS, "<@123> & @everyone")
SHORT = strategies.shorts(CHARS, 2500)
ATTACHMENT = st.builds(
    Attachment,
    st.sampled_from(["cpu.png", "latency.jpg", "probe.log", "config.json"]),
    st.binary(max_size=20),
    st.sampled_from(["image/png", "image/jpeg", "text/plain", "application/json"]),
)
REPLY = strategies.replies(
    TEXT,
    SHORT,
    strategies.buttons(CHARS, "check "),
    # Up to nine: an overflow file still fits beside them.
    attachments=st.lists(ATTACHMENT, max_size=3).map(tuple)
    | st.lists(ATTACHMENT, min_size=9, max_size=9).map(tuple),
)


def fenced_text(rows: list[str]) -> str:
    text = "\n".join(rows)
    # A handler's code block is closed; only the cuts may open one.
    return text + "\n```" if text.count("```") % 2 else text


FENCED_TEXT = st.lists(strategies.lines(UNTICKED), max_size=30).map(fenced_text)
FENCED_REPLY = st.builds(
    Reply,
    text=FENCED_TEXT,
    title=st.none() | st.just("Probe log"),
    status=st.sampled_from(Status),
    fields=st.just(()) | st.just((Field("Endpoint", "nas"),)),
)

# Commands as handlers write them: a verb, then arguments (which may hold ':' and spaces).
VERB = st.text(st.characters(categories=["Ll", "Lu", "Nd"], max_codepoint=0x7F), min_size=1)
ARGS = st.text(st.characters(codec="ascii", categories=["L", "N", "P", "S", "Zs"]), max_size=120)
COMMAND = st.builds(lambda verb, args: f"{verb} {args}".strip(), VERB, ARGS)


# --- properties ------------------------------------------------------------------------


@settings(max_examples=70, deadline=None)
@given(REPLY)
def test_any_reply_renders_within_every_discord_limit(reply: Reply) -> None:
    rendered = render(reply)
    assert_within_limits(reply, rendered)
    assert_nothing_lost(reply, rendered)


@settings(max_examples=60, deadline=None)
@given(FENCED_REPLY)
def test_every_piece_of_a_reply_closes_the_code_blocks_it_opens(reply: Reply) -> None:
    rendered = render(reply)
    assert_within_limits(reply, rendered)
    assert_nothing_lost(reply, rendered)
    assert_fences_balanced(rendered)


@settings(max_examples=200, deadline=None)
@given(COMMAND)
def test_a_button_id_runs_the_command_it_was_made_for(command: str) -> None:
    custom_id = button_id(command)
    if len(ID_PREFIX) + len(command) > CUSTOM_ID:
        assert custom_id is None
    else:
        assert custom_id is not None
        assert command_of(custom_id) == command


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=150))
def test_a_button_id_always_fits_discords_custom_id(command: str) -> None:
    custom_id = button_id(command)
    if custom_id is not None:
        assert len(custom_id) <= CUSTOM_ID
        assert custom_id.startswith(ID_PREFIX)


# --- plain replies ---------------------------------------------------------------------


def test_a_short_answer_is_message_content_and_nothing_else() -> None:
    assert render(Reply("pong")).messages == [DiscordMessage(content="pong")]


@pytest.mark.parametrize("status", [Status.OK, Status.WARNING, Status.ERROR])
def test_an_untitled_status_reply_leads_its_content_with_the_emoji(status: Status) -> None:
    text = "No endpoint called `nas`."
    assert render(Reply(text, status=status)).messages == [
        DiscordMessage(content=EMOJI[status] + text)
    ]
    assert EMOJI[status].strip()


def test_an_info_reply_has_no_emoji() -> None:
    assert EMOJI[Status.INFO] == ""
    assert render(Reply("3 endpoints")).first.content == "3 endpoints"


@pytest.mark.parametrize("text", ["", " \n "])
def test_an_empty_reply_still_posts_something(text: str) -> None:
    rendered = render(Reply(text))
    assert len(rendered.messages) == 1
    assert rendered.first.content.strip()
    assert violations(rendered.first) == []


def test_a_file_alone_does_not_make_a_reply_rich() -> None:
    log = Attachment("probe.log", b"12:00 ok\n", "text/plain")
    rendered = render(Reply("Here is the log.", attachments=(log,)))
    assert rendered.messages == [DiscordMessage(content="Here is the log.", files=(log,))]


def log_lines(chars: int) -> str:
    line = "2024-05-01T12:00:00Z probe nas http 200 in 12.3 ms <ok>"
    return "\n".join(line for _ in range(chars // (len(line) + 1)))


def test_a_long_plain_reply_continues_in_further_messages() -> None:
    text = log_lines(7_000)
    reply = Reply(text, buttons=(Button("Again", "check nas"),))
    rendered = render(reply)
    assert 2 <= len(rendered.messages) <= MAX_MESSAGES
    assert all(not m.embeds and 0 < len(m.content) <= CONTENT for m in rendered.messages)
    assert [row for m in rendered.messages for row in m.content.split("\n")] == text.split("\n")
    assert rendered.first.buttons == reply.buttons
    assert [m.buttons for m in rendered.messages[1:]] == [()] * (len(rendered.messages) - 1)


def test_a_very_long_plain_reply_travels_as_a_file() -> None:
    reply = Reply(log_lines(60_000), status=Status.WARNING)
    rendered = render(reply)
    assert len(rendered.messages) == 1
    content = rendered.first.content
    assert len(content) <= CONTENT
    assert content.startswith(EMOJI[Status.WARNING] + reply.text[:100])
    assert content.endswith("\n" + OVERFLOW_NOTE)
    (file,) = rendered.first.files
    assert file.filename == OVERFLOW_FILE
    assert file.content_type == "text/plain"
    assert file.content.decode() == plain_text(reply) == reply.text


@pytest.mark.parametrize(
    "text",
    ["a" * 1995 + "\n" + " " * 10, " " * 2500 + "ok", "done\n" + " " * 3000],
    ids=["trailing-indent", "leading-spaces", "blank-tail"],
)
def test_no_plain_message_is_only_whitespace(text: str) -> None:
    rendered = render(Reply(text))
    assert [m.content for m in rendered.messages if not m.content.strip()] == []


def test_a_code_block_cut_between_messages_is_closed_and_reopened() -> None:
    code = [f"    line {i}: value = {i * i}" for i in range(150)]
    text = "Output:\n```\n" + "\n".join(code) + "\n```\nDone."
    rendered = render(Reply(text))
    pieces = [m.content for m in rendered.messages]
    assert len(pieces) > 1
    assert all(len(p) <= CONTENT and p.count("```") % 2 == 0 for p in pieces)
    assert all(p.startswith("```\n") for p in pieces[1:-1])
    assert [row for p in pieces for row in p.split("\n") if row != "```"] == [
        row for row in text.split("\n") if row != "```"
    ]


# --- rich replies: title, status and colour --------------------------------------------


@pytest.mark.parametrize("status", list(Status))
def test_a_titled_reply_is_an_embed_coloured_by_status(status: Status) -> None:
    rendered = render(Reply("3 endpoints", title="Monitoring", status=status))
    assert rendered.messages == [
        DiscordMessage(
            embeds=(
                {
                    "color": COLOURS[status],
                    "title": EMOJI[status] + "Monitoring",
                    "description": "3 endpoints",
                },
            )
        )
    ]


def test_every_status_has_its_own_colour() -> None:
    assert set(COLOURS) == set(Status)
    assert len(set(COLOURS.values())) == len(Status)


@pytest.mark.parametrize("status", [Status.OK, Status.WARNING, Status.ERROR])
def test_an_untitled_rich_reply_still_leads_with_the_status_emoji(status: Status) -> None:
    reply = Reply("nas is down", status=status, fields=(Field("Error", "timeout"),))
    (embed,) = render(reply).first.embeds
    assert (embed.get("title") or embed["description"]).startswith(EMOJI[status])


def test_a_long_title_is_cut_but_keeps_the_emoji() -> None:
    (embed,) = render(Reply("x", title="t" * 500, status=Status.WARNING)).first.embeds
    assert len(embed["title"]) == TITLE
    assert embed["title"].startswith(EMOJI[Status.WARNING])
    assert embed["title"].endswith("…")


def test_a_title_without_text_is_an_embed_without_description() -> None:
    (embed,) = render(Reply("", title="Nothing to report")).first.embeds
    assert embed == {"color": COLOURS[Status.INFO], "title": "Nothing to report"}


def test_a_long_rich_reply_continues_in_further_messages() -> None:
    reply = Reply(log_lines(12_000), title="Probe log", footer="since 12:00 UTC")
    rendered = render(reply)
    assert 2 <= len(rendered.messages) <= MAX_MESSAGES
    assert all(not m.content for m in rendered.messages)
    embeds = all_embeds(rendered)
    assert embeds[0]["title"] == "Probe log"
    assert embeds[-1]["footer"] == {"text": "since 12:00 UTC"}
    for message in rendered.messages:
        assert violations(message) == []
    assert_nothing_lost(reply, rendered)


def test_a_very_long_rich_reply_travels_as_a_file() -> None:
    reply = Reply(
        log_lines(60_000),
        title="Probe log",
        status=Status.ERROR,
        fields=(Field("Endpoint", "nas"),),
        footer="since 12:00 UTC",
    )
    rendered = render(reply)
    assert len(rendered.messages) == 1
    first = rendered.first
    assert first.content == OVERFLOW_NOTE
    assert first.embeds[0]["title"] == EMOJI[Status.ERROR] + "Probe log"
    assert violations(first) == []
    (file,) = first.files
    assert file.filename == OVERFLOW_FILE
    assert file.content_type == "text/plain"
    assert file.content.decode() == plain_text(reply)
    assert "Endpoint: nas" in file.content.decode()
    assert file.content.decode().endswith("since 12:00 UTC")


# --- fields and footer -----------------------------------------------------------------


def test_fields_fill_embeds_of_at_most_25() -> None:
    reply = Reply("status", fields=tuple(Field(f"ep{i}", "up", i % 2 == 0) for i in range(30)))
    (message,) = render(reply).messages
    assert [len(e.get("fields", [])) for e in message.embeds] == [25, 5]
    assert message.embeds[0]["fields"][:2] == [
        {"name": "ep0", "value": "up", "inline": True},
        {"name": "ep1", "value": "up", "inline": False},
    ]
    assert violations(message) == []


def test_empty_field_names_and_values_are_not_sent_empty() -> None:
    (embed,) = render(Reply("x", fields=(Field("", ""), Field("Note", "")))).first.embeds
    assert [(f["name"], f["value"]) for f in embed["fields"]] == [(EMPTY, EMPTY), ("Note", EMPTY)]


def test_long_field_names_and_values_are_cut_with_an_ellipsis() -> None:
    (embed,) = render(Reply("x", fields=(Field("n" * 300, "v" * 2000),))).first.embeds
    (field,) = embed["fields"]
    assert field["name"] == "n" * (FIELD_NAME - 1) + "…"
    assert field["value"] == "v" * (FIELD_VALUE - 1) + "…"


def test_many_large_fields_spread_over_messages_within_the_total() -> None:
    reply = Reply(
        "report",
        fields=tuple(Field(f"{i:03}" + "n" * 253, "v" * FIELD_VALUE) for i in range(12)),
        footer="f" * FOOTER,
    )
    rendered = render(reply)
    assert len(rendered.messages) > 1
    for message in rendered.messages:
        assert violations(message) == []
    assert_nothing_lost(reply, rendered)


def test_the_footer_goes_on_the_last_embed() -> None:
    reply = Reply("status", fields=tuple(Field(f"ep{i}", "up") for i in range(30)), footer="12:00")
    embeds = render(reply).first.embeds
    assert [e.get("footer") for e in embeds] == [None, {"text": "12:00"}]


def test_a_footer_too_big_for_the_last_embed_gets_its_own() -> None:
    # 200 + 4000 + 2048 characters: more than one embed may hold.
    reply = Reply("d" * 4000, title="t" * 200, footer="f" * FOOTER)
    rendered = render(reply)
    embeds = all_embeds(rendered)
    assert embeds[-1] == {"color": COLOURS[Status.INFO], "footer": {"text": "f" * FOOTER}}
    assert "footer" not in embeds[0]
    for message in rendered.messages:
        assert violations(message) == []


def test_embed_size_counts_what_discord_counts() -> None:
    embed = {
        "color": 1,
        "title": "ab",
        "description": "cde",
        "image": {"url": "attachment://a-long-file-name.png"},
        "fields": [{"name": "f", "value": "gh", "inline": True}],
        "footer": {"text": "ijkl"},
    }
    assert embed_size(embed) == 2 + 3 + 1 + 2 + 4
    assert embed_size({"color": 1}) == 0


# --- images, files and buttons ---------------------------------------------------------

CHART = Attachment("cpu.png", b"\x89PNG\r\n", "image/png")


def test_an_image_is_shown_in_the_first_embed_and_sent_with_it() -> None:
    rendered = render(Reply("CPU over the last hour", attachments=(CHART,)))
    (message,) = rendered.messages
    assert message.content == ""
    (embed,) = message.embeds
    assert embed["image"] == {"url": "attachment://cpu.png"}
    assert embed["description"] == "CPU over the last hour"
    assert message.files == (CHART,)


def test_an_image_without_text_is_still_a_postable_embed() -> None:
    (message,) = render(Reply("", attachments=(CHART,))).messages
    assert message.embeds == (
        {"color": COLOURS[Status.INFO], "image": {"url": "attachment://cpu.png"}},
    )
    assert violations(message) == []


def test_images_buttons_and_files_stay_on_the_first_message() -> None:
    log = Attachment("probe.log", b"ok", "text/plain")
    buttons = (Button("Check now", "check nas"), Button("Cancel", None))
    reply = Reply(log_lines(15_000), title="nas", attachments=(log, CHART), buttons=buttons)
    rendered = render(reply)
    assert len(rendered.messages) > 1
    assert rendered.first.embeds[0]["image"] == {"url": "attachment://cpu.png"}
    assert [e for e in all_embeds(rendered)[1:] if "image" in e] == []
    assert rendered.first.files == (log, CHART)
    assert rendered.first.buttons == buttons
    assert all(m.files == () and m.buttons == () for m in rendered.messages[1:])


def test_more_buttons_than_discord_shows_are_cut_to_25_with_short_labels() -> None:
    buttons = tuple(Button(f"{i:02}" + "L" * 100, f"ack {i}") for i in range(30))
    reply = Reply("pick", buttons=buttons)
    buttons = render(reply).first.buttons
    assert len(buttons) == BUTTONS
    assert [b.command for b in buttons] == [f"ack {i}" for i in range(BUTTONS)]
    assert all(len(b.label) == BUTTON_LABEL and b.label.endswith("…") for b in buttons)


def test_more_files_than_discord_takes_are_cut_leaving_room_for_the_overflow_file() -> None:
    files = tuple(Attachment(f"f{i}.txt", b"", "text/plain") for i in range(12))
    assert render(Reply("files", attachments=files)).first.files == files[: FILES - 1]


def test_the_overflow_file_is_sent_even_beside_ten_attachments() -> None:
    files = tuple(Attachment(f"f{i}.txt", b"", "text/plain") for i in range(FILES))
    rendered = render(Reply(log_lines(60_000), attachments=files))
    assert rendered.first.content.endswith(OVERFLOW_NOTE)
    assert OVERFLOW_FILE in [f.filename for f in rendered.first.files]


def test_the_image_an_embed_shows_is_among_the_files_sent() -> None:
    files = tuple(Attachment(f"f{i}.txt", b"", "text/plain") for i in range(FILES))
    first = render(Reply("see chart", attachments=(*files, CHART))).first
    assert first.embeds[0]["image"] == {"url": "attachment://cpu.png"}
    assert CHART in first.files


# --- button ids ------------------------------------------------------------------------


def test_ack_17_is_encoded_exactly() -> None:
    assert button_id("ack 17") == "calcifer:ack:17"
    assert command_of("calcifer:ack:17") == "ack 17"


@pytest.mark.parametrize(
    "command",
    ["ack 17", "mute web-1 1h", "check db", "status", "endpoint remove web --yes", "check a:b"],
)
def test_realistic_commands_round_trip(command: str) -> None:
    custom_id = button_id(command)
    assert custom_id is not None
    assert command_of(custom_id) == command


@pytest.mark.parametrize("length", [1, 50, 85, 86, 100])
def test_endpoint_names_up_to_100_characters(length: int) -> None:
    command = "check " + "n" * length
    custom_id = button_id(command)
    if len(ID_PREFIX) + len(command) <= CUSTOM_ID:  # names of up to 85 characters
        assert custom_id is not None
        assert len(custom_id) <= CUSTOM_ID
        assert command_of(custom_id) == command
    else:
        assert custom_id is None, "a truncated command would run something else"


def test_the_longest_command_that_fits_is_kept_and_one_more_is_not() -> None:
    fits = "x" * (CUSTOM_ID - len(ID_PREFIX))
    assert button_id(fits) == ID_PREFIX + fits
    assert button_id(fits + "x") is None


def test_surrounding_whitespace_is_not_part_of_the_command() -> None:
    custom_id = button_id("  ack 17 \n")
    assert custom_id == "calcifer:ack:17"


@pytest.mark.parametrize("command", ["", "   ", "a:b c", "ack:17", ":ack 17"])
def test_commands_without_a_plain_verb_get_no_id(command: str) -> None:
    assert button_id(command) is None


@pytest.mark.parametrize(
    "custom_id",
    [DISMISS_ID + "0", DISMISS_ID + "12", TOKEN_ID + "3f9a", "other:ack:17", "ack 17", ""],
)
def test_dismiss_token_and_foreign_ids_run_nothing(custom_id: str) -> None:
    assert command_of(custom_id) is None


@pytest.mark.parametrize("command", ["-h", "#general status"])
def test_a_verb_that_looks_like_a_dismiss_or_token_id_is_not_encoded_as_one(command: str) -> None:
    custom_id = button_id(command)
    assert custom_id is None or command_of(custom_id) == command
