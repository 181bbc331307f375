"""Reply → Discord messages: embeds coloured by status, buttons, files, and Discord's limits.

Every size limit Discord enforces lives here, so the adapter never sends a
message Discord would refuse with 400 Invalid Form Body. A short, plain reply
(no title, fields, footer or image) is message content, as a person would
write it; anything richer is one or more embeds. A reply too large for one
message continues in further messages; one too large for a few travels whole
as a text file.

Button custom ids carry the command they run (``calcifer:ack:17`` runs
``ack 17``), so a button on an alert posted weeks ago still works after a
restart without any stored state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from adapters.text import cut, plain_text, split_text
from calcifer_bot.reply import Attachment, Button, Reply, Status

# Discord's limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
CONTENT = 2000
TITLE = 256
DESCRIPTION = 4096
FIELDS = 25  # per embed
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
EMBED_TOTAL = 6000  # all embeds of one message together
EMBEDS = 10  # per message
FILES = 10  # per message
BUTTONS = 25  # five action rows of five
BUTTON_LABEL = 80
CUSTOM_ID = 100
# Past this many messages a reply is sent as a file instead of a flood of them.
MAX_MESSAGES = 5

ID_PREFIX = "calcifer:"
DISMISS_ID = ID_PREFIX + "-"  # + the button's index: Cancel, runs nothing
TOKEN_ID = ID_PREFIX + "#"  # + a token the adapter maps to a command too long for an id
OVERFLOW_NOTE = "The full output is in the attached file."
EMPTY = "\u200b"  # Discord refuses empty field names and values
COLOURS = {
    Status.OK: 0x2EB886,
    Status.INFO: 0x439FE0,
    Status.WARNING: 0xDAA038,
    Status.ERROR: 0xA30200,
}
# The colour bar is not enough for everyone: the status is also in the words' lead.
EMOJI = {Status.OK: "🟢 ", Status.INFO: "", Status.WARNING: "⚠️ ", Status.ERROR: "🔴 "}

Embed = dict[str, Any]


@dataclass(frozen=True, slots=True)
class DiscordMessage:
    content: str = ""
    embeds: tuple[Embed, ...] = ()
    buttons: tuple[Button, ...] = ()
    files: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class Rendered:
    messages: list[DiscordMessage]  # the first is the reply, with its buttons and files

    @property
    def first(self) -> DiscordMessage:
        return self.messages[0]


def button_id(command: str) -> str | None:
    """``ack 17`` → ``calcifer:ack:17``; None when it does not fit in a custom id."""
    verb, _, rest = command.strip().partition(" ")
    if not verb[:1].isalnum() or ":" in verb:  # "-" and "#" lead the dismiss and token ids
        return None
    custom_id = ID_PREFIX + verb + (f":{rest}" if rest else "")
    return custom_id if len(custom_id) <= CUSTOM_ID else None


def command_of(custom_id: str) -> str | None:
    """The command a :func:`button_id` runs; None for dismiss and token ids."""
    if not custom_id.startswith(ID_PREFIX) or custom_id.startswith((DISMISS_ID, TOKEN_ID)):
        return None
    verb, sep, rest = custom_id.removeprefix(ID_PREFIX).partition(":")
    if not verb:
        return None
    return f"{verb} {rest}" if sep else verb


def embed_size(embed: Embed) -> int:
    """The characters Discord counts towards EMBED_TOTAL."""
    size = len(embed.get("title", "")) + len(embed.get("description", ""))
    size += len(embed.get("footer", {}).get("text", ""))
    return size + sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", ()))


def render(reply: Reply) -> Rendered:
    buttons = tuple(replace(b, label=cut(b.label, BUTTON_LABEL)) for b in reply.buttons[:BUTTONS])
    files = reply.attachments[: FILES - 1]  # room for the overflow file
    image = next((a for a in reply.attachments if a.content_type.startswith("image/")), None)
    if image is not None and image not in files:  # the chart matters more than a tenth file
        files = (*files[:-1], image)
    rich = bool(reply.title or reply.fields or reply.footer or image)
    messages = _embedded(reply, image) if rich else _plain(reply)
    if len(messages) > MAX_MESSAGES:
        overflow = Attachment("calcifer-output.txt", plain_text(reply).encode(), "text/plain")
        files = (*files, overflow)
        messages = [_with_note(messages[0], reply)]
    first = replace(messages[0], buttons=buttons, files=files)
    return Rendered([first, *messages[1:]])


def _plain(reply: Reply) -> list[DiscordMessage]:
    text = EMOJI[reply.status] + reply.text if reply.text.strip() else "(no text)"
    # Discord refuses a message of only whitespace as empty.
    return [DiscordMessage(content=p) for p in split_text(text, CONTENT) if p.strip()]


def _with_note(first: DiscordMessage, reply: Reply) -> DiscordMessage:
    if first.embeds:
        return replace(first, content=OVERFLOW_NOTE)
    room = CONTENT - len(OVERFLOW_NOTE) - 1
    head = split_text(EMOJI[reply.status] + reply.text, room)[0]
    return replace(first, content=f"{head}\n{OVERFLOW_NOTE}")


def _embedded(reply: Reply, image: Attachment | None) -> list[DiscordMessage]:
    colour = COLOURS[reply.status]
    embeds: list[Embed] = []
    head: Embed = {"color": colour}
    if reply.title:
        head["title"] = cut(EMOJI[reply.status] + reply.title, TITLE)
    if image is not None:
        head["image"] = {"url": f"attachment://{image.filename}"}
    text = reply.text if reply.title or not reply.text.strip() else EMOJI[reply.status] + reply.text
    pieces = [p for p in split_text(text, DESCRIPTION) if p.strip()] or [""]
    for i, piece in enumerate(pieces):
        embed: Embed = head if i == 0 else {"color": colour}
        if piece:
            embed["description"] = piece
        embeds.append(embed)
    for f in reply.fields:
        name = cut(f.name, FIELD_NAME) if f.name.strip() else EMPTY
        value = cut(f.value, FIELD_VALUE) if f.value.strip() else EMPTY
        field = {"name": name, "value": value, "inline": f.inline}
        last, grows = embeds[-1], len(name) + len(value)
        # Room is kept for the footer, which goes on the last embed.
        if len(last.get("fields", ())) >= FIELDS or embed_size(last) + grows > EMBED_TOTAL - FOOTER:
            embeds.append({"color": colour, "fields": [field]})
        else:
            last["fields"] = [*last.get("fields", ()), field]
    if reply.footer:
        footer = {"text": cut(reply.footer, FOOTER)}
        if embed_size(embeds[-1]) + len(footer["text"]) > EMBED_TOTAL:
            embeds.append({"color": colour})
        embeds[-1]["footer"] = footer
    return _pack(embeds)


def _pack(embeds: list[Embed]) -> list[DiscordMessage]:
    """Embeds into messages of at most EMBEDS embeds and EMBED_TOTAL characters each."""
    messages: list[list[Embed]] = []
    current: list[Embed] = []
    size = 0
    for embed in embeds:
        grows = embed_size(embed)
        if current and (len(current) >= EMBEDS or size + grows > EMBED_TOTAL):
            messages.append(current)
            current, size = [], 0
        current.append(embed)
        size += grows
    messages.append(current)
    return [DiscordMessage(embeds=tuple(m)) for m in messages]
