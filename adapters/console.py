"""The console adapter: commands typed at a prompt, replies as plain text.

The console user is ``console:local``, an admin: whoever has a shell on the
host already has everything.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from calcifer_bot.aio import blocking
from calcifer_bot.core import Core
from calcifer_bot.outbox import Delivery
from calcifer_bot.reply import Button, Command, MessageRef, Reply, Status

PLATFORM = "console"
USER = "local"
_MARK = {Status.OK: "✓", Status.INFO: "•", Status.WARNING: "!", Status.ERROR: "✗"}


def render(reply: Reply) -> str:
    """Plain text; markdown code marks dropped, buttons numbered for pressing."""
    lines = []
    if reply.title:
        lines.append(f"{_MARK[reply.status]} {reply.title}")
    text = (
        reply.text
        if reply.title or reply.status is Status.INFO
        else f"{_MARK[reply.status]} {reply.text}"
    )
    lines += text.splitlines()
    for f in reply.fields:
        value = f.value.splitlines() or [""]
        if len(value) == 1:
            lines.append(f"  {f.name}: {value[0]}")
        else:
            lines += [f"  {f.name}:", *(f"    {v}" for v in value)]
    if reply.footer:
        lines.append(reply.footer)
    for a in reply.attachments:
        lines.append(f"  (attachment {a.filename}, {len(a.content)} bytes)")
    if reply.buttons:
        lines.append("  " + "   ".join(f"[{i}] {b.label}" for i, b in enumerate(reply.buttons, 1)))
    return "\n".join(lines).replace("`", "")


class ConsoleAdapter:
    def __init__(self, core: Core, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.core = core
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._buttons: tuple[Button, ...] = ()

    async def run_one(self, text: str, *, errors_to_stderr: bool = False) -> Reply:
        """Dispatch one line and print the reply."""
        number = text.strip()
        if number.isdecimal() and 0 < int(number) <= len(self._buttons):
            button = self._buttons[int(number) - 1]
            self._buttons = ()
            if button.command is None:
                print(f"{button.label}: nothing done.", file=self.out)
                return Reply(text="nothing done")
            print(f"→ {button.command}", file=self.out)
            text = button.command
        reply = await self.core.dispatch(
            Command(PLATFORM, USER, PLATFORM, text, user_name="console"), self._progress
        )
        self._buttons = reply.buttons
        stream = self.err if errors_to_stderr and not reply.ok else self.out
        print(render(reply), file=stream, flush=True)
        return reply

    async def deliver(self, delivery: Delivery) -> MessageRef:
        """Print an alert from the outbox; edits and thread replies are printed as such."""
        lead = {"post": "", "update": "(updated) ", "reply": "  ↳ "}[delivery.op]
        text = render(delivery.reply)
        if delivery.op == "reply":
            text = text.replace("\n", "\n    ")
        print(f"{lead}{text}", file=self.out, flush=True)
        return MessageRef(PLATFORM, delivery.channel, str(delivery.id))

    async def _progress(self, text: str) -> None:
        print(f"… {text}", file=self.err, flush=True)

    async def run_lines(self, stream: TextIO) -> bool:
        """Each line of a non-interactive stream is a command; False if any failed."""
        ok = True
        # Read in a worker thread: a slow pipe must not hold up the event loop.
        while line := await blocking(stream.readline):
            if line.strip() and not line.lstrip().startswith("#"):
                ok = (await self.run_one(line, errors_to_stderr=True)).ok and ok
        return ok

    async def run_interactive(self, history: Path, *, ctrl_c_exits: bool = False) -> None:
        """A prompt with history; Ctrl-D leaves, Ctrl-C clears the line (or leaves)."""
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory
        from prompt_toolkit.patch_stdout import patch_stdout

        history.parent.mkdir(parents=True, exist_ok=True)
        session: PromptSession[str] = PromptSession(history=FileHistory(str(history)))
        print("Calcifer console: type help for the commands, Ctrl-D to leave.", file=self.out)
        with patch_stdout(raw=True):
            while True:
                try:
                    line = await session.prompt_async("calcifer> ")
                except KeyboardInterrupt:
                    if ctrl_c_exits:
                        return
                    continue
                except EOFError:
                    return
                if line.strip() in ("exit", "quit"):
                    return
                if line.strip():
                    await self.run_one(line)
