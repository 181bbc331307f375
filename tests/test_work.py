"""Work items end to end through the console adapter, on a real git repository.

Everything is real: the repository is made with the git command line in tmp_path,
Calcifer's commands run through the console adapter and the dispatcher, and what
they did is read back with git and from the database.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import select

from adapters.console import ConsoleAdapter
from calcifer_bot.core import Core
from calcifer_bot.models import ChangelogEntry, OutboxMessage, WorkItem
from calcifer_bot.reply import Reply, Status
from calcifer_bot.workitems import branch_name, checklist, slug
from tests.conftest import CHANGES, FakeClock, add_endpoint, git, observe, snapshot

BRANCH = "service/new/nas-backups-to-s3-20261203"


@pytest.fixture
def settings_env(repo: Path) -> dict[str, str]:
    return {"CALCIFER_GIT_REPO": str(repo), "CALCIFER_WORK_CHANNEL": "console"}


@pytest.fixture
def console(core: Core) -> ConsoleAdapter:
    return ConsoleAdapter(core, out=io.StringIO(), err=io.StringIO())


async def run(console: ConsoleAdapter, text: str) -> Reply:
    return await console.run_one(text)


def shown(reply: Reply) -> str:
    return "\n".join([reply.title or "", reply.text, *(f.value for f in reply.fields)])


def test_branch_names_and_checklists_follow_the_kind_of_change(clock: FakeClock) -> None:
    assert slug("NAS backups to S3!") == "nas-backups-to-s3"
    assert slug("¿?") == "change"
    assert branch_name("service", "new", "NAS backups to S3", clock()) == BRANCH
    fix = [entry["text"] for entry in checklist("service", "fix")]
    assert fix[0].startswith("Cause found") and fix[-1].startswith("CHANGES.md entry")
    docs = [entry["text"] for entry in checklist("documentation", "new")]
    assert "Documentation written" in docs and all(
        not e["done"] for e in checklist("service", "new")
    )


async def test_the_whole_work_item_flow_from_new_to_done(
    console: ConsoleAdapter, core: Core, repo: Path
) -> None:
    created = await run(
        console, 'work new "NAS backups to S3" --category service --action new --service nas'
    )
    assert created.ok, created.text
    assert BRANCH in git(repo, "branch", "--list", BRANCH)
    assert git(repo, "branch", "--show-current") == "main", "creating it does not switch"
    items = len(checklist("service", "new"))

    # Nothing is there yet: done says exactly what is missing, and changes nothing.
    before = snapshot(repo)
    refused = await run(console, "work done 1")
    assert refused.status is Status.WARNING
    for missing in ("not ticked", "no notes", "adds no entry", "not merged"):
        assert missing in refused.text
    assert snapshot(repo) == before

    # The change itself, made on the branch as a person would.
    git(repo, "checkout", "-q", BRANCH)
    (repo / "CHANGES.md").write_text(CHANGES + "- NAS backups to S3, nightly.\n")
    git(repo, "commit", "-qam", "nas: backups to S3")
    git(repo, "checkout", "-q", "main")
    assert (await run(console, "endpoint add nas tcp 10.0.0.5:445")).ok
    documented = await run(console, "doc nas --commit")
    assert documented.ok, documented.text
    assert "nas" in git(repo, "show", f"{BRANCH}:docs/endpoint-nas.md")
    # Nobody mapped the console user to an address: one that says who, and bounces.
    assert git(repo, "log", "-1", "--format=%an <%ae>", BRANCH) == "console <local@console.invalid>"
    for number in range(1, items + 1):
        assert (await run(console, f"work tick 1 {number}")).ok
    assert (await run(console, 'work note 1 "nightly at 02:00, 30 days kept"')).ok

    not_merged = await run(console, "work done 1")
    assert not_merged.status is Status.WARNING
    assert "not merged" in not_merged.text and "2 commits ahead" in not_merged.text
    assert "not ticked" not in not_merged.text and "CHANGES.md" not in not_merged.text

    merged = await run(console, f"git merge {BRANCH} --yes")
    assert merged.ok, merged.text
    assert BRANCH in git(repo, "branch", "--merged", "main")

    done = await run(console, "work done 1")
    assert done.ok and done.status is Status.OK, done.text
    shown_text = shown(done)
    assert "NAS backups to S3, nightly." in shown_text

    item = await core.db.read(lambda s: s.get(WorkItem, 1))
    assert item is not None and item.status == "done" and item.completed_at is not None
    entries = await core.db.read(lambda s: list(s.scalars(select(ChangelogEntry))))
    assert [(e.section, e.text, e.work_item_id) for e in entries] == [
        ("Added", "NAS backups to S3, nightly.", 1)
    ]
    opened, announced = await core.db.read(
        lambda s: list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
    )
    assert opened.destination == "console" and opened.kind == "work-new"
    assert "New work item 1: NAS backups to S3" in str(opened.payload)
    assert announced.destination == "console" and announced.kind == "work-done"
    assert "Done: NAS backups to S3" in str(announced.payload)

    listed = await run(console, "work list")
    assert "NAS backups" not in listed.text, "a done item is not open"
    assert "(done)" in (await run(console, "work list --all")).text


async def test_work_show_tells_the_branch_state_and_the_notes(
    console: ConsoleAdapter, repo: Path
) -> None:
    await run(console, 'work new "Runbook for the NAS" --category documentation --action new')
    await run(console, 'work note 1 "covers disk replacement"')

    shown_item = shown(await run(console, "work show 1"))

    assert "no commits of its own" in shown_item
    assert "covers disk replacement" in shown_item
    assert "☐ 1. Documentation written" in shown_item


async def test_bad_input_changes_nothing(console: ConsoleAdapter, core: Core, repo: Path) -> None:
    before = snapshot(repo)

    bad_category = await run(console, 'work new "x" --category misc --action new')
    no_action = await run(console, 'work new "x" --category service')
    missing = await run(console, "work tick 9 1")

    assert "expected one of platform_feature" in bad_category.text
    assert "--action" in no_action.text
    assert "no work item 9" in missing.text
    assert snapshot(repo) == before
    assert await core.db.read(lambda s: list(s.scalars(select(WorkItem)))) == []


async def test_a_second_item_with_the_same_branch_is_refused(
    console: ConsoleAdapter, core: Core, repo: Path
) -> None:
    first = await run(console, 'work new "NAS backups to S3" --category service --action new')
    again = await run(console, 'work new "NAS backups to S3" --category service --action new')

    assert first.ok and not again.ok
    assert "already exists" in again.text
    assert len(await core.db.read(lambda s: list(s.scalars(select(WorkItem))))) == 1


async def test_a_viewer_may_read_but_not_start_work(core: Core, repo: Path) -> None:
    from tests.conftest import ChatBot

    bot = ChatBot(core)
    denied = await bot.say('work new "x" --category service --action new', user="slack:UV")
    allowed = await bot.say("work list", user="slack:UV")

    assert denied.title == "Not allowed"
    assert allowed.ok


async def test_an_alert_names_the_merge_that_came_just_before_it(
    core: Core, repo: Path, clock: FakeClock
) -> None:
    git(repo, "checkout", "-q", "-b", "nas-timeout")
    (repo / "nas.conf").write_text("timeout = 30\n")
    git(repo, "add", "nas.conf")
    git(repo, "commit", "-qm", "nas: raise the mount timeout", at="2026-12-03T11:40:00Z")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge nas-timeout", "nas-timeout",
        at="2026-12-03T11:48:00Z")  # fmt: skip
    endpoint_id = await add_endpoint(core, "nas", channel="console", service="nas", failures=1)

    await observe(core, endpoint_id, ok=False)  # at 12:00, the test clock's time

    [alert] = await core.db.read(lambda s: list(s.scalars(select(OutboxMessage))))
    context = str(alert.payload)
    assert "merged 12m before" in context and "Merge nas-timeout" in context
