"""Reply → Slack messages: Block Kit, a colour bar, a plain-text fallback, and Slack's limits.

Every size limit Slack enforces (or truncates at) lives here, so the adapter
never posts a message Slack would refuse with ``invalid_blocks`` or
``msg_too_long``. A reply too large for one message becomes a first message
plus continuation messages for its thread; one too large for a few messages
keeps its first part and travels whole as a text file.

Layout: the title is a header block and the text sections follow it at the top
level; fields, the footer (a context line) and buttons sit in an attachment
whose ``color`` shows the status, because Block Kit itself has no colour.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from adapters.text import cut, plain_text, split_text
from calcifer_bot.reply import Attachment, Button, Reply, Status

# Slack's limits (https://api.slack.com/reference/block-kit/blocks and chat.postMessage).
BLOCKS = 50  # per message, attachments' blocks included
SECTION_TEXT = 3000
FIELDS = 10  # per section
FIELD_TEXT = 2000
HEADER_TEXT = 150
CONTEXT_TEXT = 3000
BUTTONS = 25  # per actions block
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
# Slack truncates longer messages (and people stop reading): split past this.
MESSAGE_CHARS = 4000
# Past this many messages a reply is sent as a file instead of a flood of them.
MAX_MESSAGES = 5

ACTION_PREFIX = "calcifer:"
DISMISS = ACTION_PREFIX + "dismiss:"  # + the button's index; such a button has no value
COLOURS = {
    Status.OK: "#2eb886",
    Status.INFO: "#439fe0",
    Status.WARNING: "#daa038",
    Status.ERROR: "#a30200",
}
EMOJI = {
    Status.OK: ":large_green_circle: ",
    Status.INFO: "",
    Status.WARNING: ":warning: ",
    Status.ERROR: ":red_circle: ",
}


@dataclass(frozen=True, slots=True)
class SlackMessage:
    text: str  # the plain-text fallback: notifications, screen readers
    blocks: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)

    def kwargs(self) -> dict[str, Any]:
        """Arguments for chat.postMessage, chat.update, chat.postEphemeral and respond()."""
        # Always all three: an empty attachments list is what makes chat.update drop the
        # old attachment (a resolved alert loses its buttons).
        return {"text": self.text, "blocks": self.blocks, "attachments": self.attachments}


@dataclass(frozen=True, slots=True)
class Rendered:
    messages: list[SlackMessage]  # the first is the reply; the rest go in its thread
    file: Attachment | None = None  # the whole text, when it was too long for messages

    @property
    def first(self) -> SlackMessage:
        return self.messages[0]


def escape(text: str) -> str:
    """Slack's three control characters; everything else in mrkdwn is left as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str) -> str:
    """Calcifer's replies are Markdown-ish (`code`, **bold**): Slack wants *bold*."""
    return re.sub(r"\*\*(.+?)\*\*", r"*\1*", escape(text))


def button_element(index: int, button: Button) -> dict[str, Any] | None:
    if button.command is not None and len(button.command) > BUTTON_VALUE:
        return None  # a truncated command would run something else
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": cut(button.label, BUTTON_TEXT), "emoji": True},
        # Action ids must be unique within a message, dismiss buttons included.
        "action_id": f"{DISMISS if button.command is None else ACTION_PREFIX}{index}",
    }
    if button.command is not None:
        element["value"] = button.command
    if button.style != "default":
        element["style"] = button.style
    return element


def render(reply: Reply) -> Rendered:
    text = mrkdwn(reply.text)
    if not reply.title and text.strip():
        text = EMOJI[reply.status] + text
    text_sections = [_section(piece) for piece in split_text(text, SECTION_TEXT) if piece.strip()]
    head: list[dict[str, Any]] = []
    if reply.title:
        title = cut(EMOJI[reply.status] + reply.title, HEADER_TEXT)
        header = {"type": "plain_text", "text": title, "emoji": True}
        head.append({"type": "header", "text": header})
    details = _details(reply)
    # Escaped too: notifications show it, and a typed <!channel> must not ping anyone.
    fallback = cut(escape(plain_text(reply)), MESSAGE_CHARS)
    if not fallback.strip():
        fallback = "(no text)"

    # The first message: the header, the text that fits, and the details with the buttons.
    budget = MESSAGE_CHARS - _size(details) - _size(head)
    room = BLOCKS - len(head) - len(details) - 1  # one left for a "continued" line
    first: list[dict[str, Any]] = []
    rest = list(text_sections)
    while rest and room > 0 and (not first or _size([rest[0]]) <= budget):
        block = rest.pop(0)
        first.append(block)
        budget -= _size([block])
        room -= 1
    continuations = _pack(rest)
    file: Attachment | None = None
    if len(continuations) + 1 > MAX_MESSAGES:
        continuations = []
        file = Attachment("calcifer-output.txt", plain_text(reply).encode(), "text/plain")
        first.append(_context("The full output is in the attached file."))
    elif continuations:
        first.append(_context("Continued in the thread."))
    attachments = []
    if details:
        attachments = [{"color": COLOURS[reply.status], "blocks": details, "fallback": fallback}]
    messages = [SlackMessage(fallback, head + first, attachments)]
    messages += [SlackMessage(cut(_text_of(b), MESSAGE_CHARS), b) for b in continuations]
    return Rendered(messages, file)


def _details(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    inline = [f for f in reply.fields if f.inline]
    for start in range(0, len(inline), FIELDS):
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {
                        "type": "mrkdwn",
                        "text": cut(f"*{escape(f.name)}*\n{mrkdwn(f.value)}", FIELD_TEXT),
                    }
                    for f in inline[start : start + FIELDS]
                ],
            }
        )
    for f in reply.fields:
        if not f.inline:
            blocks.append(_section(cut(f"*{escape(f.name)}*\n{mrkdwn(f.value)}", SECTION_TEXT)))
    del blocks[BLOCKS // 2 :]  # room for the header, text, footer and buttons
    if reply.footer:
        blocks.append(_context(cut(mrkdwn(reply.footer), CONTEXT_TEXT)))
    elements = (button_element(i, b) for i, b in enumerate(reply.buttons[:BUTTONS]))
    buttons = [e for e in elements if e is not None]
    if buttons:
        blocks.append({"type": "actions", "block_id": "calcifer", "elements": buttons})
    return blocks


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _pack(sections: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Text sections into messages of at most MESSAGE_CHARS and BLOCKS each."""
    messages: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    for block in sections:
        if current and (_size([*current, block]) > MESSAGE_CHARS or len(current) >= BLOCKS):
            messages.append(current)
            current = []
        current.append(block)
    if current:
        messages.append(current)
    return messages


def _text_of(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(t for t in _texts(blocks))


def _size(blocks: list[dict[str, Any]]) -> int:
    return sum(len(t) for t in _texts(blocks))


def _texts(blocks: list[dict[str, Any]]) -> Iterator[str]:
    for block in blocks:
        if "text" in block:
            yield block["text"]["text"]
        for item in [*block.get("fields", ()), *block.get("elements", ())]:
            text = item.get("text")
            yield text["text"] if isinstance(text, dict) else (text or "")
