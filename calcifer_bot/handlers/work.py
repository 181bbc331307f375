"""work new / list / show / note / tick / done, and committing generated docs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from calcifer_bot.changelog import render_entry
from calcifer_bot.commands import Arg, Context, choice, command, integer
from calcifer_bot.errors import CalciferError, NotFound, PermissionDenied, UsageError
from calcifer_bot.handlers.git import SERVICE, author, repos
from calcifer_bot.models import ChangelogEntry, WorkItem, WorkNote
from calcifer_bot.outbox import publish
from calcifer_bot.parser import counted
from calcifer_bot.reply import Field, Reply, Status
from calcifer_bot.roles import Role
from calcifer_bot.routing import Labels
from calcifer_bot.workitems import (
    ACTIONS,
    CATEGORIES,
    branch_name,
    checklist,
    item_by_id,
    open_items,
    readiness,
)

ITEM = Arg("id", "the work item's number", integer(1))


def _checklist_text(item: WorkItem) -> str:
    return "\n".join(
        f"{'☑' if entry['done'] else '☐'} {i}. {entry['text']}"
        for i, entry in enumerate(item.checklist, 1)
    )


def _progress(item: WorkItem) -> str:
    done = sum(1 for entry in item.checklist if entry["done"])
    return f"{done}/{len(item.checklist)}"


@command(
    "work new",
    summary="Start a work item: a branch of its own and a checklist for the change",
    args=[
        Arg("title", "what changes, in a few words", rest=True),
        Arg(
            "category",
            "platform_feature, integration, service or documentation",
            choice(*CATEGORIES),
            option=True,
        ),
        Arg("action", "new, change or fix", choice(*ACTIONS), option=True),
        SERVICE,
    ],
    role=Role.OPERATOR,
    examples=['work new "NAS backups to S3" --category service --action new --service nas'],
)
async def work_new(
    ctx: Context, title: str, category: str, action: str, service: str | None
) -> Reply:
    title = title.strip()
    if not title:
        raise UsageError("the work item needs a title")
    now = ctx.now()
    branch = branch_name(category, action, title, now)
    # The branch first: if git refuses, nothing is written.
    created = await repos().create_branch(branch, checkout=False, service=service)
    item = WorkItem(
        title=title[:200],
        category=category,
        action=action,
        service=service,
        repository=str(repos().path(service)),
        branch=branch,
        base_commit=created.sha,
        checklist=checklist(category, action),
        created_by=ctx.command.user_name or ctx.identity,
        created_at=now,
    )

    def add(session: Session) -> int:
        session.add(item)
        session.flush()
        announcement = Reply(
            title=f"New work item {item.id}: {item.title}",
            text=f"{item.created_by} opened a work item ({category}/{action}) on `{branch}`.",
            fields=(Field("Service", service),) if service else (),
        )
        _announce(ctx, session, "work-new", item.id, service, announcement, now)
        return item.id

    item_id = await ctx.db.write(add)
    ctx.core.wake_deliverers()
    return Reply(
        title=f"Work item {item_id}: {item.title}",
        text=f"Branch `{branch}` created from `{created.sha[:8]}`. "
        f"`git checkout {branch}` to work on it.",
        status=Status.OK,
        fields=(
            Field("Kind", f"{category} / {action}"),
            Field("Service", service or "—"),
            Field("Checklist", _checklist_text(item), inline=False),
        ),
        footer=f"`work tick {item_id} N` ticks an item; `work done {item_id}` when it is all done.",
    )


@command(
    "work list",
    summary="Open work items (or all of them)",
    args=[Arg("all", "closed ones too", switch=True), SERVICE],
    examples=["work list", "work list --service nas"],
)
async def work_list(ctx: Context, all: bool, service: str | None) -> Reply:
    def read(session: Session) -> list[WorkItem]:
        if not all:
            return open_items(session, service)
        query = select(WorkItem).order_by(WorkItem.id.desc()).limit(50)
        if service is not None:
            query = query.where(WorkItem.service == service)
        return list(session.scalars(query))

    items = await ctx.db.read(read)
    lines = [
        f"**{i.id}** {i.title} — {i.category}/{i.action}"
        f"{f', {i.service}' if i.service else ''}, {_progress(i)} ticked"
        f"{' (done)' if i.status == 'done' else ''}"
        for i in items
    ]
    empty = "No open work items. `work new TITLE --category C --action A` starts one."
    return Reply(title="Work items", text="\n".join(lines) or empty)


@command(
    "work show",
    summary="A work item: checklist, notes, its branch and commits",
    args=[ITEM],
    examples=["work show 3"],
)
async def work_show(ctx: Context, id: int) -> Reply:
    def read(session: Session) -> tuple[WorkItem, list[tuple[str, str]]]:
        item = item_by_id(session, id)
        return item, [(n.author, n.text) for n in item.notes]

    item, notes = await ctx.db.read(read)
    fields = [
        Field("Kind", f"{item.category} / {item.action}"),
        Field("Service", item.service or "—"),
        Field("Status", item.status),
        Field("Checklist", _checklist_text(item), inline=False),
        Field("Notes", "\n".join(f"{who}: {text}" for who, text in notes) or "none yet", False),
    ]
    try:
        merge = await repos().is_branch_merged(item.branch, service=item.service)
        fields.append(Field("Branch", f"`{item.branch}`: {merge.detail}", inline=False))
        commits = await repos().get_recent_commits(
            min(max(merge.ahead, 1), 5), branch=item.branch, service=item.service
        )
        if merge.ahead:
            listed = "\n".join(f"`{c.short}` {c.subject} — {c.author_name}" for c in commits)
            fields.append(Field("Commits", listed, inline=False))
    except CalciferError as exc:  # a deleted branch, a moved repository: show the rest
        fields.append(Field("Branch", f"`{item.branch}`: {exc.message}", inline=False))
    return Reply(
        title=f"Work item {item.id}: {item.title}",
        text=f"Started by {item.created_by} on {item.created_at:%Y-%m-%d}.",
        fields=tuple(fields),
    )


@command(
    "work note",
    summary="Add a note to a work item: what changed, why, what to watch",
    args=[ITEM, Arg("text", "the note", rest=True)],
    role=Role.OPERATOR,
    examples=['work note 3 "mount timeout raised from 5 s to 30 s; the NAS spins up slowly"'],
)
async def work_note(ctx: Context, id: int, text: str) -> Reply:
    who = ctx.command.user_name or ctx.identity

    def add(session: Session) -> int:
        item = item_by_id(session, id)
        item.notes.append(WorkNote(author=who, text=text, created_at=ctx.now()))
        return len(item.notes)

    count = await ctx.db.write(add)
    return Reply(text=f"Noted on work item {id} ({counted(count, 'note')}).", status=Status.OK)


@command(
    "work tick",
    summary="Tick (or with --undo untick) a checklist item",
    args=[
        ITEM,
        Arg("number", "the checklist item's number", integer(1)),
        Arg("undo", "untick it", switch=True),
    ],
    role=Role.OPERATOR,
    examples=["work tick 3 1", "work tick 3 1 --undo"],
)
async def work_tick(ctx: Context, id: int, number: int, undo: bool) -> Reply:
    def tick(session: Session) -> WorkItem:
        item = item_by_id(session, id)
        if number > len(item.checklist):
            raise UsageError(f"work item {id} has {counted(len(item.checklist), 'checklist item')}")
        entries: list[dict[str, Any]] = [dict(entry) for entry in item.checklist]
        entries[number - 1]["done"] = not undo
        item.checklist = entries  # a new list, so the JSON column is written
        return item

    item = await ctx.db.write(tick)
    mark = "Unticked" if undo else "Ticked"
    return Reply(
        text=f"{mark} {number}. {item.checklist[number - 1]['text']} ({_progress(item)} done).",
        status=Status.OK,
    )


@command(
    "work done",
    summary="Close a work item once its checklist, notes, CHANGES.md entry and merge are there",
    args=[ITEM],
    role=Role.OPERATOR,
    slow=True,
    examples=["work done 3"],
)
async def work_done(ctx: Context, id: int) -> Reply:
    item = await ctx.db.read(lambda s: _loaded(s, id))
    if item.status == "done":
        return Reply(text=f"Work item {id} is already done.", status=Status.INFO)
    await ctx.progress(f"Checking work item {id}…")
    git = repos()
    try:
        merge = await git.is_branch_merged(item.branch, service=item.service)
        merged, merge_detail = merge.merged, merge.detail
    except NotFound as exc:
        merged, merge_detail = False, exc.message
    try:
        changes = await git.check_changes(item.branch, base=item.base_commit, service=item.service)
        added, problems = changes.added, [str(p) for p in changes.problems]
    except NotFound as exc:  # the branch is gone: what else is missing is still worth saying
        added, problems = (), [exc.message]
    if not added and not problems:
        problems.append("the branch adds no entry")
    found = readiness(item, merged=merged, merge_detail=merge_detail, changes_problems=problems)
    if not found.ready:
        return Reply(
            title=f"Work item {id} is not done yet",
            text="\n".join(f"• {line}" for line in found.missing),
            status=Status.WARNING,
        )
    now, who = ctx.now(), ctx.command.user_name or ctx.identity
    announcement = Reply(
        title=f"Done: {item.title}",
        text=f"Work item {id} ({item.category}/{item.action}) was completed by {who}.",
        status=Status.OK,
        fields=(
            Field("Branch", f"`{item.branch}`: {merge_detail}", inline=False),
            Field("Changes", "\n".join(render_entry(e) for e in added), inline=False),
        ),
    )

    def close(session: Session) -> None:
        row = item_by_id(session, id)
        row.status, row.completed_at = "done", now
        for entry in added:
            session.add(
                ChangelogEntry(
                    work_item_id=id,
                    version=entry.version,
                    section=entry.section,
                    text=entry.text,
                    branch=item.branch,
                    author=who,
                    created_at=now,
                )
            )
        _announce(ctx, session, "work-done", id, item.service, announcement, now)

    await ctx.db.write(close)
    ctx.core.wake_deliverers()
    return Reply(
        title=f"Work item {id} is done",
        text=f"{item.title}: closed, with {counted(len(added), 'changelog entry')}.",
        status=Status.OK,
        fields=announcement.fields,
    )


def _announce(
    ctx: Context,
    session: Session,
    event: str,
    item_id: int,
    service: str | None,
    reply: Reply,
    now: datetime,
) -> None:
    """To the work channel (else the alert channel) and wherever the routes send ``event``."""
    publish(
        session,
        ctx.core.routes,
        Labels(event=event, service=service),
        channel=ctx.settings.work_channel or ctx.settings.alert_channel,
        key=f"{event}:{item_id}",
        reply=reply,
        now=now,
        fallback=None,
    )


def _loaded(session: Session, item_id: int) -> WorkItem:
    item = item_by_id(session, item_id)
    _ = item.notes  # loaded while the session is open
    return item


async def commit_doc(ctx: Context, name: str, text: str, item_id: int | None) -> Reply:
    """``doc NAME --commit``: the generated page, committed to a work item's branch."""
    if ctx.role < Role.OPERATOR:
        raise PermissionDenied(f"`doc --commit` needs the operator role; you are {ctx.role}.")

    def pick(session: Session) -> WorkItem:
        if item_id is not None:
            return item_by_id(session, item_id)
        everyone = open_items(session)
        mine = [i for i in everyone if i.created_by in (ctx.identity, ctx.command.user_name)]
        candidates = mine or everyone
        if not candidates:
            raise UsageError("no open work item to commit to: start one with `work new …`")
        return candidates[0]

    item = await ctx.db.read(pick)
    if item.status != "open":
        raise UsageError(f"work item {item.id} is done; start a new one with `work new …`")
    path = f"docs/endpoint-{name}.md"
    who, email = author(ctx)
    sha = await repos().write_file(
        item.branch,
        path,
        text,
        f"docs: {name} endpoint documentation",
        author_name=who,
        author_email=email,
        service=item.service,
    )
    return Reply(
        text=f"Committed `{path}` to `{item.branch}` (work item {item.id}): `{sha[:8]}`.",
        status=Status.OK,
    )
