"""The git integration on real repositories, each answer checked against the git command line.

Repositories are made in tmp_path with ``git`` itself; HOME points into tmp_path
and GIT_CONFIG_NOSYSTEM is set, so no configuration of the machine leaks in
(in particular no user.name: the integration must set every identity itself).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

import integrations
from calcifer_bot.config import GitSettings, Settings
from calcifer_bot.errors import CalciferError, IntegrationError, NotFound, UsageError
from integrations.base import Reachability
from integrations.git import (
    BranchInfo,
    GitIntegration,
    MergeState,
    MergeStatus,
    RepoStatus,
    check_branch_name,
)

CHANGES = """# Changelog

## [Unreleased]

### Added
- The first service.
"""


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in list(os.environ):
        if var.startswith("GIT_") and var != "GIT_CONFIG_NOSYSTEM":
            monkeypatch.delenv(var)


def git(repo: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.org", *args],
        cwd=repo,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=check,
    )
    return done.stdout.strip()


def git_ok(repo: Path, *args: str) -> bool:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True).returncode == 0


def commit_file(repo: Path, name: str, content: str, message: str, when: str | None = None) -> str:
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(content)
    git(repo, "add", "--", name)
    dates = {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when} if when else None
    git(repo, "commit", "-q", "-m", message, env=dates)
    return git(repo, "rev-parse", "HEAD")


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "CHANGES.md").write_text(CHANGES)
    (path / "a.txt").write_text("".join(f"line {n}\n" for n in range(1, 11)))
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "Start")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "infra")


@pytest.fixture
def gi(repo: Path) -> Iterator[GitIntegration]:
    yield GitIntegration(repo, committer_name="Calcifer", committer_email="calcifer@example.org")


def snapshot(repo: Path) -> tuple[object, ...]:
    """HEAD, the index, every ref and the work tree, byte for byte."""
    files = {
        str(p.relative_to(repo)): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    }
    return (
        git(repo, "rev-parse", "HEAD"),
        git(repo, "symbolic-ref", "-q", "HEAD", check=False),
        git(repo, "for-each-ref"),
        git(repo, "status", "--porcelain", "--untracked-files=all"),
        git(repo, "ls-files", "-s"),
        files,
    )


def merged_per_git(repo: Path, target: str = "main") -> set[str]:
    return set(git(repo, "branch", "--merged", target, "--format=%(refname:short)").split())


def left_right(repo: Path, branch: str, target: str = "main") -> tuple[int, int]:
    behind, ahead = git(repo, "rev-list", "--left-right", "--count", f"{target}...{branch}").split()
    return int(ahead), int(behind)


def branch_with_commits(repo: Path, name: str, count: int, start: str = "main") -> None:
    git(repo, "checkout", "-q", "-b", name, start)
    for n in range(count):
        commit_file(repo, f"{name}/{n}.txt", f"{name} {n}\n", f"{name}: change {n}")
    git(repo, "checkout", "-q", "main")


# --------------------------------------------------------------------------- merge detection


async def test_committed_then_fast_forwarded_is_merged(repo: Path, gi: GitIntegration) -> None:
    branch_with_commits(repo, "ff", 2)
    git(repo, "merge", "-q", "--ff-only", "ff")
    # The tip IS the merge base now, exactly as for a branch never committed to:
    # only the reflog tells the two apart.
    assert git(repo, "rev-parse", "ff") == git(repo, "merge-base", "ff", "main")

    found = await gi.is_branch_merged("ff")

    assert found == MergeStatus(MergeState.MERGED, "ff", "main", 0, 0, "merged into main")
    assert found.merged and "ff" in merged_per_git(repo)


async def test_a_merge_commit_is_merged(repo: Path, gi: GitIntegration) -> None:
    branch_with_commits(repo, "feature", 2)
    commit_file(repo, "b.txt", "b\n", "main moves on")
    git(repo, "merge", "-q", "--no-ff", "--no-edit", "feature")
    commit_file(repo, "c.txt", "c\n", "and on")

    found = await gi.is_branch_merged("feature")

    assert found.state is MergeState.MERGED and found.detail == "merged into main"
    assert (found.ahead, found.behind) == left_right(repo, "feature") == (0, 3)
    assert "feature" in merged_per_git(repo)


async def test_a_squash_merge_is_squash_merged(repo: Path, gi: GitIntegration) -> None:
    branch_with_commits(repo, "squashed", 3)
    commit_file(repo, "b.txt", "b\n", "main moves on")
    git(repo, "merge", "-q", "--squash", "squashed")
    git(repo, "commit", "-q", "-m", "squashed (#12)")

    found = await gi.is_branch_merged("squashed")

    assert found.state is MergeState.SQUASH_MERGED and found.merged
    assert found.detail == "squash-merged into main"
    assert (found.ahead, found.behind) == left_right(repo, "squashed") == (3, 2)
    assert "squashed" not in merged_per_git(repo), "git itself does not see it"


async def test_a_squash_merge_whose_context_moved_is_seen(repo: Path, gi: GitIntegration) -> None:
    # The branch changes line 6; main changed line 4 first, so the squash
    # commit's diff has other context lines and another patch-id.
    git(repo, "checkout", "-q", "-b", "context")
    lines = (repo / "a.txt").read_text().splitlines(keepends=True)
    lines[5] = "line 6, changed on the branch\n"
    commit_file(repo, "a.txt", "".join(lines), "change line 6")
    git(repo, "checkout", "-q", "main")
    main_lines = (repo / "a.txt").read_text().splitlines(keepends=True)
    main_lines[3] = "line 4, changed on main\n"
    commit_file(repo, "a.txt", "".join(main_lines), "change line 4")
    git(repo, "merge", "-q", "--squash", "context")
    git(repo, "commit", "-q", "-m", "context (#13)")
    branch_patch = git(repo, "diff", "main~2", "context")
    squash_patch = git(repo, "show", "--format=", "main")
    assert branch_patch.splitlines()[4:] != squash_patch.splitlines()[4:]
    objects = git(repo, "count-objects", "-v")

    found = await gi.is_branch_merged("context")

    assert found.state is MergeState.SQUASH_MERGED
    assert git(repo, "count-objects", "-v") == objects, "scratch objects stay out of the repo"


async def test_a_rebased_branch_is_squash_merged(repo: Path, gi: GitIntegration) -> None:
    branch_with_commits(repo, "picked", 2)
    commit_file(repo, "b.txt", "b\n", "main moves on")
    for sha in reversed(git(repo, "rev-list", "main..picked").split()):
        git(repo, "cherry-pick", sha)

    assert (await gi.is_branch_merged("picked")).state is MergeState.SQUASH_MERGED


async def test_ahead_and_behind_with_exact_counts(repo: Path, gi: GitIntegration) -> None:
    branch_with_commits(repo, "work", 3)
    commit_file(repo, "b.txt", "b\n", "main moves on")

    found = await gi.is_branch_merged("work")

    assert found.state is MergeState.NOT_MERGED and not found.merged
    assert (found.ahead, found.behind) == left_right(repo, "work") == (3, 1)
    assert found.detail == "3 commits ahead of main, 1 behind"
    assert "work" not in merged_per_git(repo)


async def test_one_commit_ahead_is_singular(repo: Path, gi: GitIntegration) -> None:
    branch_with_commits(repo, "one", 1)
    assert (await gi.is_branch_merged("one")).detail == "1 commit ahead of main, 0 behind"


async def test_a_branch_never_committed_to_has_no_commits(repo: Path, gi: GitIntegration) -> None:
    await gi.create_branch("fresh", checkout=False)
    git(repo, "branch", "by-hand")
    git(repo, "checkout", "-q", "-b", "switched")
    git(repo, "checkout", "-q", "main")
    commit_file(repo, "b.txt", "b\n", "main moves on")

    for name in ("fresh", "by-hand", "switched"):
        found = await gi.is_branch_merged(name)
        assert found.state is MergeState.NO_COMMITS, name
        assert found.detail == "no commits of its own (created from main, never committed)"
        assert (found.ahead, found.behind) == left_right(repo, name) == (0, 1)
        assert not found.merged
    assert {"fresh", "by-hand", "switched"} <= merged_per_git(repo), "git calls them merged"


async def test_without_a_reflog_a_branch_on_the_target_is_merged(
    repo: Path, gi: GitIntegration
) -> None:
    git(repo, "branch", "old")
    (repo / ".git" / "logs" / "refs" / "heads" / "old").unlink()

    assert (await gi.is_branch_merged("old")).state is MergeState.MERGED


async def test_missing_branches_are_not_found(repo: Path, gi: GitIntegration) -> None:
    branch_with_commits(repo, "gone", 1)
    git(repo, "branch", "-q", "-D", "gone")

    with pytest.raises(NotFound, match=f"^no branch 'gone' in {re.escape(str(repo))}$"):
        await gi.is_branch_merged("gone")
    with pytest.raises(NotFound, match="no branch 'develop'"):
        await gi.is_branch_merged("main", "develop")
    with pytest.raises(NotFound, match="no branch 'nope'"):
        await gi.get_branch_info("nope")


async def test_merge_states_agree_with_git_on_a_real_history(
    repo: Path, gi: GitIntegration
) -> None:
    branch_with_commits(repo, "ff", 1)
    git(repo, "merge", "-q", "--ff-only", "ff")
    branch_with_commits(repo, "merged", 2)
    commit_file(repo, "m.txt", "m\n", "main work")
    git(repo, "merge", "-q", "--no-ff", "--no-edit", "merged")
    branch_with_commits(repo, "open", 2)
    branch_with_commits(repo, "old", 1, start="main~2")
    git(repo, "branch", "fresh")
    branch_with_commits(repo, "squashed", 2)
    git(repo, "merge", "-q", "--squash", "squashed")
    git(repo, "commit", "-q", "-m", "squashed")
    commit_file(repo, "n.txt", "n\n", "more main work")

    branches = await gi.get_branches(target="main")
    states = {b.name: b.merge.state for b in branches if b.merge}

    assert states == {
        "ff": MergeState.MERGED,
        "merged": MergeState.MERGED,
        "open": MergeState.NOT_MERGED,
        "old": MergeState.NOT_MERGED,
        "fresh": MergeState.NO_COMMITS,
        "squashed": MergeState.SQUASH_MERGED,
    }
    on_target = {n for n, s in states.items() if s in (MergeState.MERGED, MergeState.NO_COMMITS)}
    assert on_target == merged_per_git(repo) - {"main"}
    for name in states:
        status = await gi.is_branch_merged(name)
        assert (status.ahead, status.behind) == left_right(repo, name), name
    assert (await gi.is_branch_merged("main")).detail == "the target itself"


# --------------------------------------------------------------------------- merging


async def test_merge_makes_a_merge_commit_by_the_user_and_restores_the_branch(
    repo: Path, gi: GitIntegration
) -> None:
    branch_with_commits(repo, "feature", 2)
    commit_file(repo, "b.txt", "b\n", "main moves on")
    git(repo, "checkout", "-q", "-b", "elsewhere")

    sha = await gi.merge_branch("feature", author_name="Ann Ops", author_email="ann@example.org")

    assert sha == git(repo, "rev-parse", "main")
    assert len(git(repo, "show", "-s", "--format=%P", sha).split()) == 2, "--no-ff"
    who = git(repo, "show", "-s", "--format=%an <%ae>|%cn <%ce>|%s", sha)
    assert who == "Ann Ops <ann@example.org>|Calcifer <calcifer@example.org>|" + (
        "Merge branch 'feature' into main"
    )
    assert git(repo, "branch", "--show-current") == "elsewhere", "back where it was"
    assert git(repo, "status", "--porcelain") == ""
    assert (await gi.is_branch_merged("feature")).state is MergeState.MERGED

    # Merged already: nothing new.
    assert await gi.merge_branch("feature") == sha


async def test_a_fast_forwardable_branch_still_gets_a_merge_commit(
    repo: Path, gi: GitIntegration
) -> None:
    branch_with_commits(repo, "linear", 1)
    sha = await gi.merge_branch("linear")
    assert git(repo, "show", "-s", "--format=%P", sha).split()[1] == git(
        repo, "rev-parse", "linear"
    )
    assert git(repo, "show", "-s", "--format=%an", sha) == "Calcifer", "no author: Calcifer"


async def test_a_conflicting_merge_changes_nothing(repo: Path, gi: GitIntegration) -> None:
    git(repo, "checkout", "-q", "-b", "clash")
    commit_file(repo, "a.txt", "theirs\n", "clash: rewrite a")
    git(repo, "checkout", "-q", "main")
    commit_file(repo, "a.txt", "ours\n", "main: rewrite a")
    git(repo, "checkout", "-q", "clash")
    before = snapshot(repo)

    with pytest.raises(UsageError, match=r"merging clash into main conflicts in a.txt") as err:
        await gi.merge_branch("clash")

    assert "nothing was changed" in err.value.message
    assert snapshot(repo) == before
    assert not (repo / ".git" / "MERGE_HEAD").exists()


async def test_a_dirty_tree_refuses_every_change_and_changes_nothing(
    repo: Path, gi: GitIntegration
) -> None:
    branch_with_commits(repo, "feature", 1)
    (repo / "a.txt").write_text("edited, not committed\n")
    (repo / "scratch.txt").write_text("untracked\n")
    git(repo, "add", "scratch.txt")
    (repo / "loose.txt").write_text("untracked\n")
    before = snapshot(repo)

    attempts = [
        gi.merge_branch("feature"),
        gi.checkout_branch("feature"),
        gi.create_branch("new", checkout=True),
        gi.write_file("feature", "x.txt", "x\n", "add x"),
    ]
    for attempt in attempts:
        with pytest.raises(UsageError, match=r"uncommitted changes .1 staged, 1 modified, 1 untr"):
            await attempt
        assert snapshot(repo) == before


async def test_merge_refusals(repo: Path, gi: GitIntegration) -> None:
    await gi.create_branch("fresh", checkout=False)
    branch_with_commits(repo, "feature", 1)
    with pytest.raises(UsageError, match=r"fresh: no commits of its own.*nothing to merge"):
        await gi.merge_branch("fresh")
    git(repo, "merge", "-q", "--squash", "feature")
    git(repo, "commit", "-q", "-m", "feature, squashed")
    with pytest.raises(UsageError, match="feature: squash-merged into main, so there is nothing"):
        await gi.merge_branch("feature")
    branch_with_commits(repo, "feature2", 1)
    git(repo, "checkout", "-q", "--detach", "HEAD")
    before = snapshot(repo)
    with pytest.raises(UsageError, match=r"HEAD in .* is detached at [0-9a-f]{7}: check out"):
        await gi.merge_branch("feature2")
    with pytest.raises(UsageError, match="is detached"):
        await gi.commit("anything")
    assert snapshot(repo) == before


# --------------------------------------------------------------------------- commits and files


async def test_commit_is_by_the_author_and_committed_by_calcifer(
    repo: Path, gi: GitIntegration
) -> None:
    (repo / "a.txt").write_text("changed\n")
    (repo / "new.txt").write_text("new\n")

    sha = await gi.commit("ops: two files", "Ann Ops", "ann@example.org")

    assert sha == git(repo, "rev-parse", "HEAD")
    shown = git(repo, "show", "-s", "--format=%an|%ae|%cn|%ce|%s", sha)
    assert shown == "Ann Ops|ann@example.org|Calcifer|calcifer@example.org|ops: two files"
    assert set(git(repo, "show", "--name-only", "--format=", sha).split()) == {"a.txt", "new.txt"}
    assert git(repo, "status", "--porcelain") == ""
    [latest] = await gi.get_recent_commits(1)
    assert (latest.sha, latest.author_name, latest.committer_name) == (sha, "Ann Ops", "Calcifer")


async def test_commit_of_listed_paths_only(repo: Path, gi: GitIntegration) -> None:
    (repo / "a.txt").write_text("changed\n")
    (repo / "new.txt").write_text("new\n")

    sha = await gi.commit("just the new file", paths=["new.txt"])

    assert git(repo, "show", "--name-only", "--format=", sha) == "new.txt"
    assert git(repo, "status", "--porcelain") == "M a.txt"
    with pytest.raises(NotFound, match=r"no file 'missing.txt'"):
        await gi.commit("nothing there", paths=["missing.txt"])
    assert git(repo, "status", "--porcelain") == "M a.txt"


async def test_nothing_to_commit_and_blank_messages(repo: Path, gi: GitIntegration) -> None:
    before = snapshot(repo)
    with pytest.raises(UsageError, match=f"^nothing to commit in {re.escape(str(repo))}$"):
        await gi.commit("empty")
    (repo / "a.txt").write_text("changed\n")
    with pytest.raises(UsageError, match="a commit needs a message"):
        await gi.commit("   \n")
    with pytest.raises(UsageError, match="cannot contain <, >"):
        await gi.commit("x", "Eve <eve@evil>", "e@example.org")
    git(repo, "checkout", "--", "a.txt")
    assert snapshot(repo) == before


async def test_write_file_commits_onto_the_branch_and_comes_back(
    repo: Path, gi: GitIntegration
) -> None:
    await gi.create_branch("docs", checkout=False)
    before = git(repo, "rev-parse", "main")

    sha = await gi.write_file(
        "docs", "docs/nas.md", "# NAS\n", "docs: nas", author_name="Ann", author_email="a@x.org"
    )

    assert git(repo, "rev-parse", "docs") == sha
    assert git(repo, "show", "docs:docs/nas.md") == "# NAS"
    assert git(repo, "show", "-s", "--format=%an %cn", sha) == "Ann Calcifer"
    assert git(repo, "branch", "--show-current") == "main"
    assert git(repo, "rev-parse", "main") == before
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert not (repo / "docs").exists(), "the file lives on the branch only"
    snap = snapshot(repo)
    with pytest.raises(UsageError, match="already has that content"):
        await gi.write_file("docs", "docs/nas.md", "# NAS\n", "again")
    assert snapshot(repo) == snap


async def test_write_file_from_a_detached_head_returns_there(
    repo: Path, gi: GitIntegration
) -> None:
    await gi.create_branch("docs", checkout=False)
    git(repo, "checkout", "-q", "--detach", "main")
    await gi.write_file("docs", "n.md", "n\n", "n")
    assert git(repo, "rev-parse", "HEAD") == git(repo, "rev-parse", "main")
    assert git(repo, "symbolic-ref", "-q", "HEAD", check=False) == ""


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../outside.txt", "'..' would leave"),
        ("docs/../../outside.txt", "'..' would leave"),
        ("/etc/passwd", "not an absolute one"),
        (".git/config", "inside .git"),
        ("sub/.GIT/hooks/pre-commit", "inside .git"),
        ("", "a file path is needed"),
        ("bad\nname", "control character"),
    ],
)
async def test_write_file_refuses_paths_leaving_the_repository(
    repo: Path, gi: GitIntegration, path: str, why: str
) -> None:
    before = snapshot(repo)
    with pytest.raises(UsageError, match=why):
        await gi.write_file("main", path, "x", "escape")
    assert snapshot(repo) == before
    assert not (repo.parent / "outside.txt").exists()


async def test_write_file_refuses_a_symlink_out(repo: Path, gi: GitIntegration) -> None:
    (repo / "out").symlink_to(repo.parent)
    git(repo, "add", "out")
    git(repo, "commit", "-q", "-m", "a link")
    before = snapshot(repo)
    with pytest.raises(UsageError, match="leads outside the repository"):
        await gi.write_file("main", "out/escaped.txt", "x", "escape")
    assert snapshot(repo) == before
    assert not (repo.parent / "escaped.txt").exists()


# --------------------------------------------------------------------------- branches


async def test_create_and_check_out_branches(repo: Path, gi: GitIntegration) -> None:
    commit_file(repo, "b.txt", "b\n", "main moves on")
    branch_with_commits(repo, "side", 1)
    git(repo, "checkout", "-q", "side")

    created = await gi.create_branch("new")  # from main, not from side where HEAD is

    assert created.sha == git(repo, "rev-parse", "main") and created.current
    assert git(repo, "branch", "--show-current") == "new"
    with pytest.raises(UsageError, match=r"^branch new already exists$"):
        await gi.create_branch("new")
    with pytest.raises(NotFound, match="no branch or commit 'nowhere'"):
        await gi.create_branch("x", start_point="nowhere")
    assert not git_ok(repo, "rev-parse", "--verify", "refs/heads/x")
    older = await gi.create_branch("older", checkout=False, start_point="main~1")
    assert older.sha == git(repo, "rev-parse", "main~1") and not older.current

    back = await gi.checkout_branch("side")
    assert back.current and git(repo, "branch", "--show-current") == "side"
    with pytest.raises(NotFound, match="no branch 'ghost'"):
        await gi.checkout_branch("ghost")


async def test_without_the_default_target_branches_start_at_head(repo: Path) -> None:
    gi = GitIntegration(repo, default_target="develop")
    branch_with_commits(repo, "side", 1)
    git(repo, "checkout", "-q", "side")
    created = await gi.create_branch("from-head", checkout=False)
    assert created.sha == git(repo, "rev-parse", "side")


INVALID_NAMES = [
    "a..b",
    "a~1",
    "a^",
    "a:b",
    "what?",
    "star*",
    "a[b",
    "back\\slash",
    "with space",
    "tab\there",
    "bell\x07",
    "del\x7f",
    "x.lock",
    "a.lock/b",
    "-rf",
    "--help",
    "/lead",
    "trail/",
    ".hidden",
    "a/.hidden",
    "dot.",
    "a//b",
    "a@{1}",
    "HEAD",
    "",
]
VALID_NAMES = [
    "main",
    "feature/x",
    "service/fix/nas-mount-20261203",
    "a.b",
    "a-b_c",
    "@a",
    "a@b",
    "x.locked",
    "é-unicode",
    "v1.2.3",
    "a/b/c/d",
]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_branch_names_are_refused_like_git_does(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="branch name"):
        check_branch_name(name)
    assert not git_ok(tmp_path, "check-ref-format", "--branch", name), name


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_branch_names_pass_like_git(tmp_path: Path, name: str) -> None:
    assert check_branch_name(name) == name
    assert git_ok(tmp_path, "check-ref-format", "--branch", name)


def test_at_alone_is_refused_though_git_takes_it(tmp_path: Path) -> None:
    # "@" means HEAD wherever a revision is read; as a branch name it only confuses.
    assert git_ok(tmp_path, "check-ref-format", "--branch", "@")
    with pytest.raises(UsageError, match="'@' alone means HEAD"):
        check_branch_name("@")


def test_the_message_names_the_rule() -> None:
    with pytest.raises(UsageError) as err:
        check_branch_name("fix..it")
    assert err.value.message == "'fix..it' is not a valid branch name: it contains '..'"
    with pytest.raises(UsageError, match=r"a part ends with '.lock'"):
        check_branch_name("x.lock")


async def test_option_like_names_never_reach_git(repo: Path, gi: GitIntegration) -> None:
    before = snapshot(repo)
    for call in (
        gi.create_branch("--orphan"),
        gi.checkout_branch("-f"),
        gi.merge_branch("--abort"),
        gi.is_branch_merged("main", "--all"),
        gi.get_recent_commits(branch="--all"),
    ):
        with pytest.raises(UsageError, match="starts with '-'"):
            await call
    with pytest.raises(NotFound):
        await gi.create_branch("x", start_point="--orphan")
    assert snapshot(repo) == before


# --------------------------------------------------------------------------- concurrency


async def test_twenty_concurrent_commands(repo: Path, gi: GitIntegration) -> None:
    branch_with_commits(repo, "done", 1)
    git(repo, "merge", "-q", "--ff-only", "done")
    names = [f"new{i}.txt" for i in range(5)]
    for name in names:
        (repo / name).write_text(f"{name}\n")

    calls: list[Coroutine[Any, Any, Any]] = []
    for i, name in enumerate(names):
        calls += [
            gi.commit(f"add {name}", "Ann", "ann@example.org", paths=[name]),
            gi.create_branch(f"c{i}", checkout=False),
            gi.get_status(),
            gi.is_branch_merged("done"),
        ]
    results = await asyncio.gather(*calls)

    shas = cast(list[str], results[0::4])
    branches = cast(list[BranchInfo], results[1::4])
    statuses = cast(list[RepoStatus], results[2::4])
    merges = cast(list[MergeStatus], results[3::4])
    assert len(set(shas)) == 5
    for sha, name in zip(shas, names, strict=True):
        assert git(repo, "show", "--name-only", "--format=", sha) == name
    assert [b.name for b in branches] == [f"c{i}" for i in range(5)]
    for status in statuses:
        assert status.branch == "main" and not status.staged and not status.modified
        assert set(status.untracked) <= set(names)
    assert all(m.state is MergeState.MERGED for m in merges)
    git(repo, "fsck", "--strict", "--no-dangling")
    assert git(repo, "status", "--porcelain") == ""
    assert len(git(repo, "rev-list", "main").split()) == 7


# --------------------------------------------------------------------------- reading


async def test_status_branches_info_and_log(repo: Path, gi: GitIntegration) -> None:
    status = await gi.get_status()
    assert status.clean and status.branch == "main" and status.subject == "Start"
    assert status.head == git(repo, "rev-parse", "--short", "HEAD")
    assert str(status) == f"{repo} on main at {status.head} Start: clean"

    (repo / "a.txt").write_text("changed\n")
    (repo / "staged.txt").write_text("s\n")
    git(repo, "add", "staged.txt")
    (repo / "sub").mkdir()
    (repo / "sub" / "loose.txt").write_text("u\n")
    status = await gi.get_status()
    assert (status.staged, status.modified, status.untracked) == (
        ("staged.txt",),
        ("a.txt",),
        ("sub/loose.txt",),
    )
    assert not status.clean and status.changes == "1 staged, 1 modified, 1 untracked"
    git(repo, "stash", "-u", "-q")

    branch_with_commits(repo, "feature", 2)
    [feature, main] = await gi.get_branches()
    assert (feature.name, main.name, main.current) == ("feature", "main", True)
    assert feature.merge is None and feature.sha == git(repo, "rev-parse", "feature")
    info = await gi.get_branch_info("feature")
    assert info.subject == "feature: change 1" and info.author_name == "Dev"
    assert info.merge is not None and info.merge.detail == "2 commits ahead of main, 0 behind"
    assert (await gi.get_branch_info("main")).merge is None

    commits = await gi.get_recent_commits(2, branch="feature")
    assert [c.sha for c in commits] == git(repo, "rev-list", "-2", "feature").split()
    assert commits[0].author_email == "dev@example.org" and not commits[0].is_merge
    stamp = int(git(repo, "show", "-s", "--format=%ct", "feature"))
    assert commits[0].committed_at == datetime.fromtimestamp(stamp, UTC)
    with pytest.raises(UsageError, match="between 1 and"):
        await gi.get_recent_commits(0)

    git(repo, "checkout", "-q", "--detach", "feature")
    assert (await gi.get_status()).branch is None


async def test_recent_merges(repo: Path, gi: GitIntegration) -> None:
    old = "2020-01-01T00:00:00+00:00"
    commit_file(repo, "b.txt", "b\n", "old main work", when=old)
    git(repo, "checkout", "-q", "-b", "feature")
    commit_file(repo, "f.txt", "f\n", "old branch work", when=old)
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "--no-edit", "feature")
    commit_file(repo, "c.txt", "c\n", "direct to main")

    found = await gi.recent_merges(datetime.now(UTC) - timedelta(hours=1))

    assert [c.subject for c in found] == ["direct to main", "Merge branch 'feature'"]
    assert found[1].is_merge and not found[0].is_merge
    assert await gi.recent_merges(datetime.now(UTC) + timedelta(hours=1)) == []
    since_2019 = await gi.recent_merges(datetime(2019, 1, 1))  # naive: UTC
    assert "old branch work" not in [c.subject for c in since_2019], "first parent only"
    assert "old main work" in [c.subject for c in since_2019]


# --------------------------------------------------------------------------- CHANGES.md


async def test_a_branch_adding_an_entry_passes(repo: Path, gi: GitIntegration) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    commit_file(repo, "CHANGES.md", CHANGES + "- NAS backups, nightly.\n", "nas backups")
    git(repo, "checkout", "-q", "main")

    found = await gi.check_changes("feature")

    assert found.valid and found.problems == ()
    assert [(e.version, e.section, e.text) for e in found.added] == [
        ("Unreleased", "Added", "NAS backups, nightly.")
    ]
    assert found.summary == (
        "CHANGES.md on feature adds 1 entry: Added (Unreleased): NAS backups, nightly."
    )
    # After the merge the target has the entry too; the base commit still shows it.
    base = git(repo, "rev-parse", "main")
    await gi.merge_branch("feature")
    assert not (await gi.check_changes("feature")).valid
    assert (await gi.check_changes("feature", base=base)).valid


async def test_a_branch_without_a_new_entry_fails(repo: Path, gi: GitIntegration) -> None:
    branch_with_commits(repo, "feature", 1)
    git(repo, "checkout", "-q", "feature")

    found = await gi.check_changes()  # the current branch

    assert not found.valid and found.added == () and found.problems == ()
    assert "adds no entry compared with main" in found.summary
    assert "## [Unreleased]" in found.summary


async def test_a_malformed_changelog_has_problems_with_lines(
    repo: Path, gi: GitIntegration
) -> None:
    bad = CHANGES + "- new entry\n\n## [1.0.0] - 2025-02-30\n### Fixed\n- y\n"
    git(repo, "checkout", "-q", "-b", "feature")
    commit_file(repo, "CHANGES.md", bad, "bad changelog")

    found = await gi.check_changes("feature")

    assert not found.valid and found.added
    assert [p.line for p in found.problems] == [9]
    assert "line 9: invalid date '2025-02-30'" in found.summary
    assert "line 9:" in found.describe()


async def test_a_missing_changelog_is_a_problem(repo: Path, gi: GitIntegration) -> None:
    git(repo, "checkout", "-q", "-b", "nochanges")
    git(repo, "rm", "-q", "CHANGES.md")
    git(repo, "commit", "-q", "-m", "drop it")

    found = await gi.check_changes("nochanges")

    assert not found.valid
    assert [str(p) for p in found.problems] == ["CHANGES.md is missing on nochanges"]
    with pytest.raises(NotFound, match="no commit 'deadbeef'"):
        await gi.check_changes("nochanges", base="deadbeef")


async def test_the_dated_style(repo: Path) -> None:
    gi = GitIntegration(repo, changelog_style="dated")
    dated = "## 2025-11-25 - Nas backup - Added\n- Nightly.\n"
    git(repo, "checkout", "-q", "-b", "feature")
    commit_file(repo, "CHANGES.md", dated, "dated")
    found = await gi.check_changes("feature")
    assert found.valid and found.added[0].text == "Nightly."


# --------------------------------------------------------------------------- connectivity, services


async def test_connectivity(repo: Path, gi: GitIntegration, tmp_path: Path) -> None:
    ok = await gi.check_connectivity()
    assert ok and ok.detail == f"repo at {repo} on main" and gi.configured

    plain = tmp_path / "plain"
    plain.mkdir()
    broken = GitIntegration(plain)
    result = await broken.check_connectivity()
    assert result.state is Reachability.CANNOT_CONNECT
    assert result.detail == f"{plain} is not a git repository (CALCIFER_GIT_REPO)"
    assert broken.configured
    with pytest.raises(CalciferError, match="is not a git repository"):
        await broken.get_status()

    assert not GitIntegration(tmp_path / "nowhere").configured
    # CALCIFER_GIT_REPO never set: "." counts only when it is a repository.
    assert not GitIntegration(plain, default_guessed=True).configured
    assert GitIntegration(repo, default_guessed=True).configured
    await gi.close()


async def test_several_repositories_by_service(repo: Path, tmp_path: Path) -> None:
    web = make_repo(tmp_path / "web")
    gi = GitIntegration(repo, {"web": web, "dns": tmp_path / "missing"})

    await gi.create_branch("web-only", checkout=False, service="web")

    assert git_ok(web, "rev-parse", "--verify", "refs/heads/web-only")
    assert not git_ok(repo, "rev-parse", "--verify", "refs/heads/web-only")
    assert (await gi.get_status(service="web")).path == web
    assert (await gi.get_status(service="other")).path == repo, "no repository: the default"
    assert gi.path("web") == web and gi.path() == repo
    result = await gi.check_connectivity()
    assert result.state is Reachability.CANNOT_CONNECT
    assert result.detail == (
        f"dns: {tmp_path / 'missing'} is not a git repository (git.repositories.dns)"
    )
    del gi._services["dns"]
    assert (await gi.check_connectivity()).detail == (
        f"repo at {repo} on main; web: repo at {web} on main"
    )


async def test_registered_and_built_from_settings(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(integrations, "_instances", {})
    settings = Settings(
        git_repo=repo,
        git=GitSettings(
            repositories={"web": tmp_path / "web"},
            committer_name="Bot",
            committer_email="bot@example.org",
            changelog="dated",
            default_target="trunk",
        ),
    )
    monkeypatch.setattr(integrations, "_settings", settings)

    built = integrations.git_manager

    assert isinstance(built, GitIntegration) and built is integrations.get("git_manager")
    assert built.path() == repo and built.path("web") == tmp_path / "web"
    assert built.committer == ("Bot", "bot@example.org")
    assert (built.changelog_style, built.default_target) == ("dated", "trunk")


async def test_the_first_commit_of_an_empty_repository(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "main")
    gi = GitIntegration(empty)
    status = await gi.get_status()
    assert status.head is None and status.branch == "main"
    assert str(status) == f"{empty} on main, no commits yet: clean"
    assert await gi.get_recent_commits() == []
    with pytest.raises(UsageError, match="no commits yet"):
        await gi.create_branch("x")

    (empty / "README").write_text("hi\n")
    sha = await gi.commit("Start", "Ann", "ann@example.org")

    assert git(empty, "rev-parse", "HEAD") == sha
    assert git(empty, "show", "-s", "--format=%an <%ae> / %cn <%ce>") == (
        "Ann <ann@example.org> / Calcifer <calcifer@localhost>"
    )


async def test_a_failing_hook_is_a_chat_message_and_the_index_is_restored(
    repo: Path, gi: GitIntegration
) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'error: secrets found in a.txt' >&2\nexit 1\n")
    hook.chmod(0o755)
    (repo / "staged.txt").write_text("s\n")
    git(repo, "add", "staged.txt")
    (repo / "a.txt").write_text("changed\n")
    before = snapshot(repo)

    with pytest.raises(IntegrationError) as err:
        await gi.commit("try")

    assert err.value.message == f"git commit failed in {repo}: secrets found in a.txt"
    assert err.value.permanent
    assert snapshot(repo) == before, "only what was staged before is staged"
