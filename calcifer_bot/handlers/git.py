"""git status / branches / log / branch / checkout / merged / commit / merge, changes check."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast

from sqlalchemy.orm import Session

import integrations
from calcifer_bot.alerts import context_prefetch, context_provider
from calcifer_bot.changelog import render_entry
from calcifer_bot.commands import Arg, Context, command, integer
from calcifer_bot.errors import CalciferError
from calcifer_bot.handlers.basics import Section, status_section
from calcifer_bot.parser import counted, format_duration
from calcifer_bot.reply import Field, Reply, Status
from calcifer_bot.roles import Role
from calcifer_bot.workitems import open_items

if TYPE_CHECKING:
    from integrations.git import CommitInfo, GitIntegration

# How far back an alert looks for the change that may have caused it, and how
# long what git said stays fresh.
MERGES_WINDOW = timedelta(hours=24)
MERGES_FRESH = timedelta(minutes=1)
# repository -> (when it was read, what landed on its target in the window)
_merges: dict[Path, tuple[datetime, list[CommitInfo]]] = {}

SERVICE = Arg("service", "the service whose repository to use", option=True, default=None)
INTO = Arg("into", "the branch it merges into (default: the configured target)", option=True,
           default=None, metavar="TARGET")  # fmt: skip


def repos() -> GitIntegration:
    """The git integration; looked up when used, after the configuration is loaded."""
    return cast("GitIntegration", integrations.get("git_manager"))


def author(ctx: Context) -> tuple[str, str]:
    """Who a commit made for this command is by: the mapping, else what the platform says."""
    mapped = ctx.settings.git.authors.get(ctx.identity)
    if mapped:
        found = re.fullmatch(r"\s*(.+?)\s*<([^>]+)>\s*", mapped)
        if found:
            return found[1], found[2]
    command = ctx.command
    name = command.user_name or ctx.identity
    # An address that can never be delivered to, but says who it was.
    email = command.user_email or f"{command.user}@{command.platform}.invalid"
    return name, email


@command(
    "git status",
    summary="The repository's branch, last commit and uncommitted changes",
    args=[SERVICE],
    examples=["git status", "git status --service nas"],
)
async def git_status(ctx: Context, service: str | None) -> Reply:
    found = await repos().get_status(service=service)
    changes = [*found.staged, *found.modified, *found.untracked]
    fields = [
        Field("Repository", f"`{found.path}`", inline=False),
        Field("Branch", f"`{found.branch}`" if found.branch else "detached HEAD"),
        Field("Last commit", f"`{found.head}` {found.subject}"),
    ]
    if changes:
        listed = "\n".join(f"`{path}`" for path in changes[:20])
        more = f"\n… and {len(changes) - 20} more" if len(changes) > 20 else ""
        fields.append(Field("Uncommitted", listed + more, inline=False))
    return Reply(
        title="Git status",
        text="Clean working tree." if found.clean else f"{counted(len(changes), 'file')} changed.",
        status=Status.OK if found.clean else Status.WARNING,
        fields=tuple(fields),
    )


@command(
    "git branches",
    summary="Branches and whether each is merged into the target",
    args=[INTO, SERVICE],
    examples=["git branches"],
)
async def git_branches(ctx: Context, into: str | None, service: str | None) -> Reply:
    target = into or ctx.settings.git.default_target
    branches = await repos().get_branches(service=service, target=target)
    lines = [f"`{b.name}` — {b.merge.detail if b.merge else 'the target'}" for b in branches]
    return Reply(title="Branches", text="\n".join(lines) or "No branches.")


@command(
    "git log",
    summary="The most recent commits",
    args=[
        Arg("count", "how many (at most 50)", integer(1, 50), default=10),
        Arg("branch", "a branch other than the current one", option=True, default=None),
        SERVICE,
    ],
    examples=["git log", "git log 20", "git log --branch main"],
)
async def git_log(ctx: Context, count: int, branch: str | None, service: str | None) -> Reply:
    commits = await repos().get_recent_commits(count, branch=branch, service=service)
    lines = [
        f"`{c.short}` {c.subject} — {c.author_name}, {c.committed_at:%Y-%m-%d %H:%M}"
        for c in commits
    ]
    return Reply(title="Recent commits", text="\n".join(lines) or "No commits yet.")


@command(
    "git branch",
    summary="Create a branch (from the target branch)",
    args=[
        Arg("name", "the new branch"),
        Arg("checkout", "switch to it too", switch=True),
        SERVICE,
    ],
    role=Role.OPERATOR,
    examples=["git branch service/fix/nas-mount", "git branch docs/new/runbook --checkout"],
)
async def git_branch(ctx: Context, name: str, checkout: bool, service: str | None) -> Reply:
    created = await repos().create_branch(name, checkout=checkout, service=service)
    where = "and checked it out" if checkout else f"(`git checkout {name}` switches to it)"
    return Reply(text=f"Created branch `{name}` at `{created.sha[:8]}` {where}.", status=Status.OK)


@command(
    "git checkout",
    summary="Switch the repository to a branch",
    args=[Arg("name", "the branch"), SERVICE],
    role=Role.OPERATOR,
    examples=["git checkout main"],
)
async def git_checkout(ctx: Context, name: str, service: str | None) -> Reply:
    found = await repos().checkout_branch(name, service=service)
    return Reply(text=f"On branch `{name}` at `{found.sha[:8]}`.", status=Status.OK)


@command(
    "git merged",
    summary="Whether a branch is merged, squash-merged, behind, or has no commits of its own",
    args=[Arg("branch", "the branch"), INTO, SERVICE],
    examples=["git merged service/fix/nas-mount-20261203", "git merged feature --into develop"],
)
async def git_merged(ctx: Context, branch: str, into: str | None, service: str | None) -> Reply:
    found = await repos().is_branch_merged(branch, into, service=service)
    status = Status.OK if found.merged else Status.INFO
    return Reply(text=f"`{branch}`: {found.detail}.", status=status)


@command(
    "git commit",
    summary="Commit every change in the working tree, with you as the author",
    args=[Arg("message", "the commit message", rest=True), SERVICE],
    role=Role.ADMIN,
    confirm=True,
    examples=['git commit "nas: raise the mount timeout"'],
)
async def git_commit(ctx: Context, message: str, service: str | None) -> Reply:
    name, email = author(ctx)
    sha = await repos().commit(message, name, email, service=service)
    return Reply(text=f"Committed `{sha[:8]}` as {name} <{email}>.", status=Status.OK)


@command(
    "git merge",
    summary="Merge a branch into the target, with you as the author",
    args=[Arg("branch", "the branch to merge"), INTO, SERVICE],
    role=Role.ADMIN,
    confirm=True,
    slow=True,
    examples=["git merge service/fix/nas-mount-20261203"],
)
async def git_merge(ctx: Context, branch: str, into: str | None, service: str | None) -> Reply:
    name, email = author(ctx)
    target = into or ctx.settings.git.default_target
    await ctx.progress(f"Merging {branch} into {target}…")
    sha = await repos().merge_branch(
        branch, target, author_name=name, author_email=email, service=service
    )
    return Reply(text=f"Merged `{branch}` into `{target}`: `{sha[:8]}`.", status=Status.OK)


@command(
    "changes check",
    summary="CHANGES.md is valid and the branch adds an entry to it",
    args=[Arg("branch", "default: the current branch", default=None), INTO, SERVICE],
    examples=["changes check", "changes check service/fix/nas-mount-20261203"],
)
async def changes_check(
    ctx: Context, branch: str | None, into: str | None, service: str | None
) -> Reply:
    found = await repos().check_changes(branch, into, service=service)
    fields = []
    if found.added:
        fields.append(Field("Adds", "\n".join(render_entry(e) for e in found.added), False))
    if found.problems:
        fields.append(Field("Problems", "\n".join(str(p) for p in found.problems[:20]), False))
    return Reply(
        title="CHANGES.md",
        text=found.summary,
        status=Status.OK if found.valid else Status.ERROR,
        fields=tuple(fields),
    )


@status_section
async def _git(ctx: Context) -> Section:
    try:
        found = await repos().get_status()
    except CalciferError as exc:  # no repository here: say so, but it is no problem
        return Section([Field("Git", exc.message)])
    state = "clean" if found.clean else "uncommitted changes"
    work = len(await ctx.db.read(open_items))
    # Uncommitted work is a fact worth showing, not a problem to raise.
    return Section(
        [
            Field("Git", f"`{found.branch or 'detached HEAD'}`, {state}"),
            Field("Open work items", str(work)),
        ]
    )


@context_prefetch
async def _read_merges(services: set[str], now: datetime) -> None:
    git = repos()
    for path, service in {git.path(s): s for s in services}.items():
        read = _merges.get(path)
        if read is not None and now - read[0] < MERGES_FRESH:
            continue
        try:
            found = await git.recent_merges(now - MERGES_WINDOW, service=service)
        except CalciferError:  # no repository for it, or no target branch: no context
            found = []
        _merges[path] = (now, found)


@context_provider
def _merged_before(session: Session, service: str, since: datetime) -> list[str]:
    """ "merged 12m before: `abc1234` nas: raise the mount timeout (Alice)"."""
    read = _merges.get(repos().path(service))
    if read is None:
        return []
    lines = [
        f"merged {format_duration(since - c.committed_at)} before: `{c.short}` {c.subject} "
        f"({c.author_name})"
        for c in read[1]
        if since - MERGES_WINDOW <= c.committed_at <= since
    ]
    return lines[:3]
