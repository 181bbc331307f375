"""The git and changes commands through the dispatcher, on a real repository.

``tests/test_git.py`` covers the integration itself in depth; here is what a
person typing the commands sees: the answers, the roles, the confirmations,
and that a refusal changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calcifer_bot.reply import Status
from tests.conftest import CHANGES, ChatBot, git, snapshot

ADMIN, OPERATOR, VIEWER = "slack:UADMIN", "slack:UOPS", "slack:UVIEW"


@pytest.fixture
def settings_env(repo: Path, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "calcifer.toml"
    config.write_text('[git]\nauthors = { "slack:UADMIN" = "Alice Admin <alice@example.org>" }\n')
    return {
        "CALCIFER_CONFIG": str(config),
        "CALCIFER_GIT_REPO": str(repo),
        "CALCIFER_ADMINS": ADMIN,
        "CALCIFER_OPERATORS": OPERATOR,
    }


async def test_git_status_shows_the_branch_and_what_is_uncommitted(
    bot: ChatBot, repo: Path
) -> None:
    clean = await bot.say("git status", user=VIEWER)
    (repo / "notes.txt").write_text("todo\n")
    dirty = await bot.say("git status", user=VIEWER)

    assert clean.status is Status.OK and "Clean working tree" in clean.text
    assert "`main`" in str(clean.fields) and "Start" in str(clean.fields)
    assert dirty.status is Status.WARNING and "notes.txt" in str(dirty.fields)


async def test_branch_checkout_merged_and_log(bot: ChatBot, repo: Path) -> None:
    created = await bot.say("git branch docs/new/runbook", user=OPERATOR)
    fresh = await bot.say("git merged docs/new/runbook", user=VIEWER)
    switched = await bot.say("git checkout docs/new/runbook", user=OPERATOR)
    (repo / "runbook.md").write_text("# Runbook\n")
    git(repo, "add", "runbook.md")
    git(repo, "commit", "-qm", "docs: runbook")
    ahead = await bot.say("git merged docs/new/runbook", user=VIEWER)
    log = await bot.say("git log 5", user=VIEWER)
    branches = await bot.say("git branches", user=VIEWER)

    assert created.ok and "Created branch `docs/new/runbook`" in created.text
    assert "no commits of its own" in fresh.text
    assert switched.ok and git(repo, "branch", "--show-current") == "docs/new/runbook"
    assert "1 commit ahead of main" in ahead.text
    assert "docs: runbook" in log.text.splitlines()[0], "newest first"
    assert "`docs/new/runbook` — 1 commit ahead of main" in branches.text


async def test_an_invalid_branch_name_is_refused_naming_the_rule(bot: ChatBot, repo: Path) -> None:
    before = snapshot(repo)

    refused = await bot.say("git branch fix..it", user=OPERATOR)

    assert not refused.ok and "'..'" in refused.text
    assert snapshot(repo) == before


async def test_commit_and_merge_are_for_admins_and_ask_first(bot: ChatBot, repo: Path) -> None:
    (repo / "nas.conf").write_text("timeout = 30\n")
    before = snapshot(repo)

    by_operator = await bot.say('git commit "nas: timeout"', user=OPERATOR)
    question = await bot.say('git commit "nas: timeout"', user=ADMIN)
    assert snapshot(repo) == before, "neither the refusal nor the question commits"
    [confirm, _cancel] = question.buttons
    assert confirm.command is not None
    done = await bot.say(confirm.command, user=ADMIN)

    assert by_operator.title == "Not allowed"
    assert question.title == "Confirm git commit"
    assert done.ok, done.text
    author = git(repo, "log", "-1", "--format=%an <%ae>|%cn")
    assert author == "Alice Admin <alice@example.org>|Calcifer", "the asker is the author"


async def test_a_merge_that_conflicts_changes_nothing_and_says_so(bot: ChatBot, repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "left")
    (repo / "CHANGES.md").write_text(CHANGES + "- Left.\n")
    git(repo, "commit", "-qam", "left")
    git(repo, "checkout", "-q", "main")
    (repo / "CHANGES.md").write_text(CHANGES + "- Right.\n")
    git(repo, "commit", "-qam", "right")
    before = snapshot(repo)

    refused = await bot.say("git merge left --yes", user=ADMIN)

    assert not refused.ok and "conflicts in CHANGES.md" in refused.text
    assert "Traceback" not in refused.text
    assert snapshot(repo) == before


async def test_changes_check_says_whether_a_branch_adds_an_entry(bot: ChatBot, repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "service/fix/nas")
    nothing = await bot.say("changes check", user=VIEWER)
    (repo / "CHANGES.md").write_text(CHANGES.replace("### Added", "### Fix") + "- NAS mount.\n")
    git(repo, "commit", "-qam", "wrong section")
    broken = await bot.say("changes check", user=VIEWER)
    (repo / "CHANGES.md").write_text(CHANGES + "- NAS mount waits for the disks.\n")
    git(repo, "commit", "-qam", "right section")
    good = await bot.say("changes check service/fix/nas", user=VIEWER)

    assert nothing.status is Status.ERROR and "no" in nothing.text.lower()
    assert broken.status is Status.ERROR and "line 5" in str(broken.fields)
    assert "Fixed" in str(broken.fields), "the problem suggests the right section"
    assert good.status is Status.OK
    assert "NAS mount waits for the disks." in str(good.fields)


async def test_status_shows_the_repository(bot: ChatBot) -> None:
    status = await bot.say("status", user=VIEWER)

    fields = {f.name: f.value for f in status.fields}
    assert fields["Git"] == "`main`, clean" and fields["Open work items"] == "0"
