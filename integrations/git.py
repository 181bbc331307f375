"""Git: branches, commits, merges and CHANGES.md checks on the repositories Calcifer keeps.

One default repository (``CALCIFER_GIT_REPO``) and optionally one per service
(``[git] repositories``); every method takes ``service`` to pick one. Commands
arrive from chat concurrently, so each repository has an :class:`asyncio.Lock`
and everything touching it runs, one at a time, in :func:`calcifer_bot.aio.blocking`.

Git itself does the work, through GitPython's command wrapper with argument
lists (never a shell). Names that reach git are checked first: branch names by
:func:`check_branch_name` (which also keeps a leading ``-`` from becoming an
option), paths by :func:`_relative_path`, and paths always follow ``--``.

A command that fails leaves the repository as it found it: HEAD, the index,
the working tree and every ref. Preconditions (a clean tree, an attached HEAD,
existing branches) are checked before anything changes, a conflicting merge is
aborted, and the branch that was checked out is checked out again. The read-only
merge checks write their scratch objects to a temporary object directory, so
even the object database is untouched.

Library exceptions stop at this module's edge: they become the Calcifer errors
of :mod:`calcifer_bot.errors`, with messages for a person in a chat channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Self, TypeVar

import git
from git.exc import (
    BadName,
    BadObject,
    CommandError,
    GitCommandError,
    GitCommandNotFound,
    InvalidGitRepositoryError,
    NoSuchPathError,
)

from calcifer_bot import changelog
from calcifer_bot.aio import blocking
from calcifer_bot.errors import CalciferError, IntegrationError, NotFound, UsageError
from integrations.base import Connectivity, Integration, Reachability

if TYPE_CHECKING:
    from calcifer_bot.config import Settings

T = TypeVar("T")

CHANGES_FILE = "CHANGES.md"
DEFAULT_ORIGIN = "CALCIFER_GIT_REPO"
MAX_COMMITS = 500  # a chat answer with more commits than this is not read
_SEP = "\x1f"
# One commit per line; the subject last because it is the only field with free text.
_LOG_FORMAT = _SEP.join(("%H", "%h", "%P", "%an", "%ae", "%cn", "%ce", "%ct", "%s"))
_CREATED = re.compile(r"branch: Created from (?P<source>.+)")
_HEX = re.compile(r"[0-9a-f]{4,64}")
# merge-tree --write-tree, which sees a squash merge whose context moved on.
_MERGE_TREE_VERSION = (2, 38)


# --------------------------------------------------------------------------- names


def check_branch_name(name: str) -> str:
    """``name`` if git accepts it as a branch (``git check-ref-format --branch``), else UsageError.

    Stricter than git in one place: ``@`` alone, which git takes as a branch
    name but reads as HEAD in every revision argument.
    """
    if not name:
        raise UsageError("a branch name is needed")

    def bad(rule: str) -> UsageError:
        return UsageError(f"{name!r} is not a valid branch name: {rule}")

    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise bad("it contains a control character")
    if " " in name:
        raise bad("it contains a space")
    for ch in "~^:?*[\\":
        if ch in name:
            raise bad(f"it contains {ch!r}")
    for seq in ("..", "@{", "//"):
        if seq in name:
            raise bad(f"it contains {seq!r}")
    if name == "@":
        raise bad("'@' alone means HEAD")
    if name == "HEAD":
        raise bad("'HEAD' is reserved")
    if name.startswith("-"):
        raise bad("it starts with '-'")
    if name.startswith("/"):
        raise bad("it starts with '/'")
    if name.endswith("/"):
        raise bad("it ends with '/'")
    if name.endswith("."):
        raise bad("it ends with '.'")
    for part in name.split("/"):
        if part.startswith("."):
            raise bad(f"a part starts with '.' ({part!r})")
        if part.endswith(".lock"):
            raise bad(f"a part ends with '.lock' ({part!r})")
    return name


def _relative_path(path: str) -> str:
    """A path inside the work tree, as git wants it: relative, no ``..``, not in ``.git``."""
    if not path or not path.strip():
        raise UsageError("a file path is needed")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        raise UsageError(f"{path!r} contains a control character")
    if path.startswith("/"):
        raise UsageError(f"{path}: expected a path inside the repository, not an absolute one")
    pure = PurePosixPath(path)
    if ".." in pure.parts:
        raise UsageError(f"{path}: '..' would leave the repository")
    if any(part.lower() == ".git" for part in pure.parts):
        raise UsageError(f"{path}: Calcifer does not write inside .git")
    if str(pure) == ".":
        raise UsageError(f"{path}: expected a file, not the repository itself")
    return str(pure)


def _check_message(message: str) -> str:
    if not message or not message.strip():
        raise UsageError("a commit needs a message")
    return message


def _check_identity(name: str, email: str) -> None:
    # git would silently drop these characters and write a different identity.
    for value in (name, email):
        if any(ch in value for ch in "<>\n\r\0"):
            raise UsageError(
                f"{value!r}: an author's name or email cannot contain <, > or a newline"
            )
    if not name.strip():
        raise UsageError("an author needs a name")


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class CommitInfo:
    sha: str
    short: str
    subject: str
    author_name: str
    author_email: str
    committer_name: str
    committer_email: str
    committed_at: datetime  # the committer's time, UTC
    parents: tuple[str, ...] = ()

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1

    def describe(self) -> str:
        when = self.committed_at.strftime("%Y-%m-%d %H:%M UTC")
        return f"{self.short} {self.subject} ({self.author_name}, {when})"

    __str__ = describe


class MergeState(StrEnum):
    MERGED = "merged"  # the tip is on the target's history
    SQUASH_MERGED = "squash-merged"  # its changes landed as other commits
    NOT_MERGED = "not merged"
    NO_COMMITS = "no commits"  # created and never committed to


@dataclass(frozen=True, slots=True)
class MergeStatus:
    state: MergeState
    branch: str
    target: str
    ahead: int  # commits on the branch that are not on the target
    behind: int  # commits on the target that are not on the branch
    detail: str  # the chat text: "merged into main", "3 commits ahead of main, 1 behind"

    @property
    def merged(self) -> bool:
        """Its work is on the target, either way: a branch that may be deleted."""
        return self.state in (MergeState.MERGED, MergeState.SQUASH_MERGED)

    def describe(self) -> str:
        return f"{self.branch}: {self.detail}"

    __str__ = describe


@dataclass(frozen=True, slots=True)
class BranchInfo:
    name: str
    sha: str
    short: str
    subject: str
    author_name: str
    author_email: str
    committed_at: datetime
    current: bool = False  # checked out
    merge: MergeStatus | None = None  # against the target, when asked for

    def describe(self) -> str:
        when = self.committed_at.strftime("%Y-%m-%d %H:%M UTC")
        text = f"{self.name} at {self.short} {self.subject} ({self.author_name}, {when})"
        if self.current:
            text += ", checked out"
        return f"{text}: {self.merge.detail}" if self.merge else text

    __str__ = describe


@dataclass(frozen=True, slots=True)
class RepoStatus:
    path: Path
    branch: str | None  # None when HEAD is detached
    head: str | None  # the short sha; None before the first commit
    subject: str  # HEAD's
    staged: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()  # changed in the work tree, not staged
    untracked: tuple[str, ...] = ()
    conflicted: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not (self.staged or self.modified or self.untracked or self.conflicted)

    @property
    def changes(self) -> str:
        """``2 staged, 1 modified``: what makes it dirty."""
        counts = (
            (len(self.conflicted), "conflicted"),
            (len(self.staged), "staged"),
            (len(self.modified), "modified"),
            (len(self.untracked), "untracked"),
        )
        return ", ".join(f"{n} {what}" for n, what in counts if n) or "clean"

    def describe(self) -> str:
        where = f"on {self.branch}" if self.branch else "detached"
        if self.head is None:
            return f"{self.path} {where}, no commits yet: {self.changes}"
        return f"{self.path} {where} at {self.head} {self.subject}: {self.changes}"

    __str__ = describe


@dataclass(frozen=True, slots=True)
class ChangesCheck:
    branch: str
    target: str  # what it was compared with: the target branch, or the base commit
    valid: bool  # parses without problems and adds at least one entry
    problems: tuple[changelog.Problem, ...]
    added: tuple[changelog.Entry, ...]
    summary: str  # one line for chat

    def describe(self) -> str:
        lines = [self.summary]
        lines += (f"  {p}" for p in self.problems)
        lines += (f"  + {changelog.render_entry(e)}" for e in self.added)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary


# --------------------------------------------------------------------------- one repository


@dataclass(frozen=True, slots=True)
class _Place:
    path: Path
    origin: str  # where the path is configured, for the "not a repository" message

    @property
    def label(self) -> str:
        return "" if self.origin == DEFAULT_ORIGIN else f"{self.origin.rsplit('.', 1)[-1]}: "


@dataclass(frozen=True, slots=True)
class _Status:
    staged: tuple[str, ...]
    modified: tuple[str, ...]
    untracked: tuple[str, ...]
    conflicted: tuple[str, ...]


class _Session:
    """One repository, used by one thread at a time (the caller holds its lock)."""

    def __init__(self, repo: git.Repo, place: _Place, author: tuple[str, str]) -> None:
        self.repo = repo
        self.place = place
        self.path = place.path
        self.root = Path(repo.working_tree_dir or place.path)
        self.calcifer = author

    # -- running git

    def out(self, *args: str, env: Mapping[str, str] | None = None, strip: bool = True) -> str:
        return self.repo.git.execute(
            [self._exe, *args], env=dict(env or {}), strip_newline_in_stdout=strip
        )

    def run(self, *args: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) without raising: for git's yes/no answers."""
        status, stdout, stderr = self.repo.git.execute(
            [self._exe, *args],
            env=dict(env or {}),
            with_extended_output=True,
            with_exceptions=False,
        )
        return int(status or 0), str(stdout), str(stderr)

    @property
    def _exe(self) -> str:
        return str(git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git")

    def author_env(self, name: str | None, email: str | None) -> dict[str, str]:
        if name is None and email is None:
            name, email = self.calcifer
        name = name if name is not None else self.calcifer[0]
        # A chat user known by name only: their name, Calcifer's address.
        email = email if email is not None else self.calcifer[1]
        _check_identity(name, email)
        return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email}

    # -- questions

    def rev(self, revision: str) -> str | None:
        if revision.startswith("-"):
            return None
        status, out, _ = self.run("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
        return out.strip() if status == 0 and out.strip() else None

    def branch_sha(self, name: str) -> str | None:
        return self.rev(f"refs/heads/{name}")

    def require_branch(self, name: str) -> str:
        sha = self.branch_sha(check_branch_name(name))
        if sha is None:
            raise NotFound(f"no branch '{name}' in {self.path}")
        return sha

    def require_target(self, name: str) -> tuple[str, str]:
        """A local branch, else a remote-tracking one (a clone that only fetches)."""
        check_branch_name(name)
        for ref in (f"refs/heads/{name}", f"refs/remotes/{name}"):
            sha = self.rev(ref)
            if sha is not None:
                return ref, sha
        raise NotFound(f"no branch '{name}' in {self.path}")

    def current_branch(self) -> str | None:
        status, out, _ = self.run("symbolic-ref", "--quiet", "--short", "HEAD")
        return out.strip() if status == 0 else None

    def head_sha(self) -> str | None:
        return self.rev("HEAD")

    def tree(self, revision: str) -> str:
        return self.out("rev-parse", f"{revision}^{{tree}}")

    def merge_base(self, a: str, b: str) -> str | None:
        status, out, _ = self.run("merge-base", a, b)
        return out.strip() if status == 0 and out.strip() else None

    def status(self) -> _Status:
        raw = self.out("status", "--porcelain=v1", "-z", "--untracked-files=all", strip=False)
        staged: list[str] = []
        modified: list[str] = []
        untracked: list[str] = []
        conflicted: list[str] = []
        items = iter(raw.split("\0"))
        for item in items:
            if len(item) < 4:
                continue
            x, y, name = item[0], item[1], item[3:]
            if x in "RC":
                next(items, None)  # the rename's source follows
            if x == "?":
                untracked.append(name)
            elif "U" in (x, y) or (x, y) in (("A", "A"), ("D", "D")):
                conflicted.append(name)
            else:
                if x != " ":
                    staged.append(name)
                if y != " ":
                    modified.append(name)
        return _Status(tuple(staged), tuple(modified), tuple(untracked), tuple(conflicted))

    def require_clean(self, action: str) -> None:
        state = self.status()
        if state.staged or state.modified or state.untracked or state.conflicted:
            shown = RepoStatus(self.path, None, None, "", *_fields(state)).changes
            raise UsageError(
                f"{self.path} has uncommitted changes ({shown}): commit or stash them "
                f"before {action}"
            )

    def require_attached(self, action: str) -> str:
        branch = self.current_branch()
        if branch is None:
            sha = self.head_sha()
            at = f" at {sha[:7]}" if sha else ""
            raise UsageError(
                f"HEAD in {self.path} is detached{at}: check out a branch before {action}"
            )
        return branch

    def commits(self, *args: str) -> list[CommitInfo]:
        out = self.out("log", f"--format={_LOG_FORMAT}", *args)
        return [_commit(line) for line in out.splitlines() if line]

    def switch(self, branch: str | None, sha: str | None) -> None:
        """Back to where HEAD was: a branch, or a detached commit."""
        if branch is not None:
            if self.current_branch() != branch:
                self.out("switch", "--quiet", branch)
        elif sha is not None and (self.current_branch() is not None or self.head_sha() != sha):
            self.out("switch", "--quiet", "--detach", sha)

    def inside(self, relative: str) -> Path:
        """The file's real place; refused when a symlink leads it out of the work tree."""
        full = self.root / relative
        root = self.root.resolve()
        if not full.resolve().is_relative_to(root):
            raise UsageError(f"{relative} leads outside the repository (through a symlink)")
        return full

    @contextlib.contextmanager
    def quarantine(self) -> Iterator[dict[str, str]]:
        """An environment whose new objects go to a scratch directory, deleted afterwards.

        Git's own trick for pushes it may refuse: existing objects are read
        through GIT_ALTERNATE_OBJECT_DIRECTORIES, new ones never reach the repository.
        """
        objects = Path(self.repo.common_dir) / "objects"
        with tempfile.TemporaryDirectory(prefix="calcifer-git-") as scratch:
            name, email = self.calcifer
            yield {
                "GIT_OBJECT_DIRECTORY": scratch,
                "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(objects.resolve()),
                "GIT_AUTHOR_NAME": name,
                "GIT_AUTHOR_EMAIL": email,
            }


def _fields(state: _Status) -> tuple[tuple[str, ...], ...]:
    return state.staged, state.modified, state.untracked, state.conflicted


def _commit(line: str) -> CommitInfo:
    sha, short, parents, an, ae, cn, ce, ct, subject = line.split(_SEP, 8)
    return CommitInfo(
        sha=sha,
        short=short,
        subject=subject,
        author_name=an,
        author_email=ae,
        committer_name=cn,
        committer_email=ce,
        committed_at=datetime.fromtimestamp(int(ct), UTC),
        parents=tuple(parents.split()),
    )


def _branch_info(
    s: _Session, name: str, merge: MergeStatus | None = None, current: str | None = None
) -> BranchInfo:
    commit = s.commits("-1", f"refs/heads/{name}", "--")[0]
    return BranchInfo(
        name=name,
        sha=commit.sha,
        short=commit.short,
        subject=commit.subject,
        author_name=commit.author_name,
        author_email=commit.author_email,
        committed_at=commit.committed_at,
        current=name == (current if current is not None else s.current_branch()),
        merge=merge,
    )


# --------------------------------------------------------------------------- merge detection


def _merge_status(s: _Session, branch: str, target: str) -> MergeStatus:
    tip = s.require_branch(branch)
    _, target_tip = s.require_target(target)
    if branch == target:  # `git branch --merged main` lists main too
        return MergeStatus(MergeState.MERGED, branch, target, 0, 0, "the target itself")
    counts = s.out("rev-list", "--left-right", "--count", f"{target_tip}...{tip}", "--")
    behind, ahead = (int(n) for n in counts.split())

    def status(state: MergeState, detail: str) -> MergeStatus:
        return MergeStatus(state, branch, target, ahead, behind, detail)

    if ahead == 0:
        # The tip is on the target's history (`git merge-base --is-ancestor`),
        # which is what `git branch --merged` lists. Two histories end there: the
        # branch got commits that were then merged (or fast-forwarded), or it was
        # created from a target commit and never committed to. The commits cannot
        # tell these apart (a fast-forwarded tip IS its merge base with the
        # target); the branch's reflog can.
        source = _never_committed(s, branch)
        if source is not None:
            shown = target if source == "HEAD" or _HEX.fullmatch(source) else source
            return status(
                MergeState.NO_COMMITS,
                f"no commits of its own (created from {shown}, never committed)",
            )
        return status(MergeState.MERGED, f"merged into {target}")
    base = s.merge_base(tip, target_tip)
    if base is not None and _landed(s, tip, target_tip, base):
        return status(MergeState.SQUASH_MERGED, f"squash-merged into {target}")
    if base is None:
        return status(
            MergeState.NOT_MERGED,
            f"{_plural(ahead, 'commit')} ahead of {target}, {behind} behind, "
            "with no history in common",
        )
    return status(
        MergeState.NOT_MERGED, f"{_plural(ahead, 'commit')} ahead of {target}, {behind} behind"
    )


def _never_committed(s: _Session, branch: str) -> str | None:
    """Where the branch was created from, when its reflog shows nothing else happened to it.

    Every entry but "branch: Created from X" (a commit, a merge, a reset, a
    rebase, a push) counts as the branch having had commits: entries expire
    oldest first, so a reflog that lost its creation still has the later ones.
    No reflog at all (core.logAllRefUpdates off, a repository copied without
    .git/logs) gives None: the tip is on the target, so "merged" is the safe
    answer. A branch created from a remote-tracking branch brought commits made
    elsewhere, so it counts as committed too.
    """
    status, out, _ = s.run("reflog", "show", "--format=%gs", f"refs/heads/{branch}", "--")
    entries = out.splitlines() if status == 0 else []
    if not entries:
        return None
    source: str | None = None
    for entry in entries:
        created = _CREATED.fullmatch(entry.strip())
        if created is None:
            return None
        source = created["source"]
        if source.startswith("refs/remotes/") or s.rev(f"refs/remotes/{source}"):
            return None
    return source


def _landed(s: _Session, tip: str, target_tip: str, base: str) -> bool:
    """Whether the branch's changes are on the target already, as other commits.

    Three tests, cheapest first, each sound on its own:

    1. ``git cherry``: every commit of the branch has a patch-equivalent
       (same ``git patch-id``) on the target since the merge base — a rebase
       merge, or cherry-picks.
    2. A squash merge is one commit whose patch is the branch's combined diff.
       Make that commit (the branch's tree on the merge base) and ask
       ``git cherry`` again; patch-ids ignore line numbers, so it still matches
       when the target moved elsewhere in the files.
    3. When the target also changed the context of those lines, patch-ids
       differ; then merge the branch into the target in memory
       (``git merge-tree --write-tree``): if the result is the target's own
       tree, merging would change nothing — the branch's changes are there.

    A branch whose commits cancel out (no net change) is not "squash-merged":
    there is nothing to have landed. Tests 2 and 3 write objects, into a
    scratch object directory (:meth:`_Session.quarantine`).
    """
    cherry = s.out("cherry", target_tip, tip).splitlines()
    if cherry and all(line.startswith("-") for line in cherry):
        return True
    if s.tree(tip) == s.tree(base):
        return False
    with s.quarantine() as env:
        squash = s.out(
            "commit-tree", f"{tip}^{{tree}}", "-p", base, "-m", "squash", env=env
        ).strip()
        if s.out("cherry", target_tip, squash, env=env).startswith("-"):
            return True
        if s.repo.git.version_info[:2] < _MERGE_TREE_VERSION:
            return False
        status, out, _ = s.run("merge-tree", "--write-tree", target_tip, tip, env=env)
        return status == 0 and out.split()[:1] == [s.tree(target_tip)]


# --------------------------------------------------------------------------- operations


def _create_branch(
    s: _Session, name: str, checkout: bool, start_point: str | None, default_target: str
) -> BranchInfo:
    check_branch_name(name)
    if s.branch_sha(name) is not None:
        raise UsageError(f"branch {name} already exists")
    if start_point is not None:
        if s.rev(start_point) is None:
            raise NotFound(f"no branch or commit '{start_point}' in {s.path}")
        source = start_point
    elif s.branch_sha(default_target) is not None:
        source = default_target
    elif s.head_sha() is not None:
        source = "HEAD"
    else:
        raise UsageError(f"{s.path} has no commits yet: there is nothing to branch from")
    if checkout:
        s.require_clean("checking out a new branch")
    s.out("branch", "--no-track", name, source)
    if checkout:
        try:
            s.out("switch", "--quiet", name)
        except BaseException:
            s.out("branch", "--delete", "--force", name)
            raise
    return _branch_info(s, name)


def _checkout_branch(s: _Session, name: str) -> BranchInfo:
    s.require_branch(name)
    if s.current_branch() != name:
        s.require_clean(f"checking out {name}")
        s.out("switch", "--quiet", name)
    return _branch_info(s, name, current=name)


def _merge_branch(
    s: _Session, branch: str, target: str, author: tuple[str | None, str | None]
) -> str:
    s.require_branch(branch)
    target_tip = s.require_branch(target)
    author_env = s.author_env(*author)
    original = s.require_attached("merging")
    s.require_clean("merging")
    status = _merge_status(s, branch, target)
    if status.state is MergeState.MERGED:
        return target_tip
    if status.state is not MergeState.NOT_MERGED:
        raise UsageError(f"{branch}: {status.detail}, so there is nothing to merge")
    try:
        s.switch(target, None)
        try:
            s.out(
                "merge",
                "--no-ff",
                "--no-edit",
                "-m",
                f"Merge branch '{branch}' into {target}",
                f"refs/heads/{branch}",
                env=author_env,
            )
        except GitCommandError:
            conflicts = s.out("diff", "--name-only", "--diff-filter=U", "-z").split("\0")
            conflicts = [c for c in conflicts if c]
            if s.run("rev-parse", "--verify", "--quiet", "MERGE_HEAD")[0] == 0:
                s.out("merge", "--abort")
            else:  # refused before it started: the tree was clean, make sure it still is
                s.out("reset", "--hard", "--quiet")
            if conflicts:
                shown = ", ".join(conflicts[:5]) + (" …" if len(conflicts) > 5 else "")
                raise UsageError(
                    f"merging {branch} into {target} conflicts in {shown}: nothing was changed; "
                    f"merge {target} into {branch} and resolve them there"
                ) from None
            raise
        return s.out("rev-parse", "HEAD")
    finally:
        s.switch(original, None)


def _commit_changes(
    s: _Session, message: str, author: tuple[str | None, str | None], paths: Sequence[str] | None
) -> str:
    _check_message(message)
    author_env = s.author_env(*author)
    s.require_attached("committing")
    relative = None if paths is None else [_relative_path(p) for p in paths]
    for rel in relative or ():
        s.inside(rel)
    index = Path(s.repo.git_dir) / "index"
    saved = index.read_bytes() if index.exists() else None
    try:
        try:
            s.out("add", "-A", *(["--", *relative] if relative is not None else []))
        except GitCommandError as exc:
            missing = re.search(r"pathspec '([^']*)' did not match", str(exc.stderr))
            if missing:
                raise NotFound(f"no file '{missing[1]}' in {s.path}") from None
            raise
        if s.run("diff", "--cached", "--quiet")[0] == 0:
            raise UsageError(f"nothing to commit in {s.path}")
        s.out("commit", "--quiet", "-m", message, env=author_env)
    except BaseException:
        # What was staged before stays staged, and only that.
        if saved is None:
            index.unlink(missing_ok=True)
        else:
            index.write_bytes(saved)
        raise
    return s.out("rev-parse", "HEAD")


def _write_file(
    s: _Session,
    branch: str,
    path: str,
    content: str,
    message: str,
    author: tuple[str | None, str | None],
) -> str:
    _check_message(message)
    relative = _relative_path(path)
    author_env = s.author_env(*author)
    s.require_branch(branch)
    s.require_clean(f"writing {relative}")
    original, original_sha = s.current_branch(), s.head_sha()
    made: list[Path] = []  # directories this call created, removed again on failure
    full: Path | None = None
    existed = True
    try:
        s.switch(branch, None)
        full = s.inside(relative)
        if s.run("check-ignore", "--quiet", "--", relative)[0] == 0:
            raise UsageError(f"{relative} is ignored (.gitignore) in {s.path}")
        if full.is_dir():
            raise UsageError(f"{relative} is a directory on {branch}")
        existed = full.exists() or full.is_symlink()
        for parent in reversed(full.relative_to(s.root).parents[:-1]):
            directory = s.root / parent
            if not directory.exists():
                directory.mkdir()
                made.append(directory)
        full.write_text(content, encoding="utf-8", newline="")
        s.out("add", "--", relative)
        if s.run("diff", "--cached", "--quiet")[0] == 0:
            raise UsageError(f"{relative} on {branch} already has that content: nothing to commit")
        s.out("commit", "--quiet", "-m", message, env=author_env)
        return s.out("rev-parse", "HEAD")
    except BaseException:
        # The tree was clean before: the branch's own files are all there is to restore.
        s.out("reset", "--hard", "--quiet")
        if full is not None and not existed:
            full.unlink(missing_ok=True)
        for directory in reversed(made):
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    finally:
        s.switch(original, original_sha)


def _repo_status(s: _Session) -> RepoStatus:
    head = s.commits("-1", "HEAD", "--") if s.head_sha() else []
    return RepoStatus(
        s.path,
        s.current_branch(),
        head[0].short if head else None,
        head[0].subject if head else "",
        *_fields(s.status()),
    )


def _branches(s: _Session, target: str | None) -> list[BranchInfo]:
    fields = (
        "%(refname:lstrip=2)",
        "%(objectname)",
        "%(objectname:short)",
        "%(authorname)",
        "%(authoremail)",
        "%(committerdate:unix)",
        "%(HEAD)",
        "%(contents:subject)",
    )
    out = s.out("for-each-ref", f"--format={'%1f'.join(fields)}", "refs/heads/")
    found: list[BranchInfo] = []
    for line in out.splitlines():
        name, sha, short, an, ae, ct, head, subject = line.split(_SEP, 7)
        merge = None
        if target is not None and name != target:
            merge = _merge_status(s, name, target)
        found.append(
            BranchInfo(
                name=name,
                sha=sha,
                short=short,
                subject=subject,
                author_name=an,
                author_email=ae.strip("<>"),
                committed_at=datetime.fromtimestamp(int(ct or 0), UTC),
                current=head == "*",
                merge=merge,
            )
        )
    return found


def _recent_commits(s: _Session, n: int, branch: str | None) -> list[CommitInfo]:
    if not 1 <= n <= MAX_COMMITS:
        raise UsageError(f"expected between 1 and {MAX_COMMITS} commits, got {n}")
    if branch is None:
        return s.commits(f"-{n}", "HEAD", "--") if s.head_sha() else []
    s.require_branch(branch)
    return s.commits(f"-{n}", f"refs/heads/{branch}", "--")


def _recent_merges(s: _Session, since: datetime, target: str) -> list[CommitInfo]:
    ref, _ = s.require_target(target)
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    # The target's first-parent line is what landed on it, one commit per
    # merge, squash or fast-forwarded commit. --since stops the walk early;
    # the filter is exact. Fast-forwarded commits carry the time they were
    # made, not when they landed: the reflog would know, clones do not have it.
    stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    found = s.commits("--first-parent", f"--since={stamp}", f"-{MAX_COMMITS}", ref, "--")
    return [c for c in found if c.committed_at >= since]


def _changes(
    s: _Session, branch: str | None, target: str, base: str | None, style: changelog.Style
) -> ChangesCheck:
    if branch is None:
        branch = s.require_attached("checking CHANGES.md (or name a branch)")
    tip = s.require_branch(branch)
    if base is None:
        _, before = s.require_target(target)
        against = target
    else:
        # The commit the branch started from: still right once the branch is
        # merged, when the target has the entries too.
        found = s.rev(base)
        if found is None:
            raise NotFound(f"no commit '{base}' in {s.path}")
        before, against = found, base[:12]

    def read(commit: str) -> str | None:
        status, _, _ = s.run("cat-file", "-e", f"{commit}:{CHANGES_FILE}")
        if status != 0:
            return None
        return s.out("cat-file", "blob", f"{commit}:{CHANGES_FILE}", strip=False)

    new, old = read(tip), read(before)
    if new is None:
        summary = f"{CHANGES_FILE} is missing on {branch}"
        return ChangesCheck(branch, against, False, (changelog.Problem(0, summary),), (), summary)
    problems = changelog.parse(new, style).problems
    added = tuple(changelog.added_entries(old, new, style))
    where = f"{CHANGES_FILE} on {branch}"
    if problems:
        summary = f"{where} has {_plural(len(problems), 'problem')}, the first: {problems[0]}"
    elif not added:
        how = "under '## [Unreleased]'" if style == "keep-a-changelog" else "under a dated heading"
        summary = f"{where} adds no entry compared with {against}: add one {how}"
    else:
        summary = (
            f"{where} adds {_plural(len(added), 'entry', 'entries')}: "
            + "; ".join(changelog.render_entry(e) for e in added[:3])
            + (" …" if len(added) > 3 else "")
        )
    return ChangesCheck(branch, against, not problems and bool(added), problems, added, summary)


def _describe_repo(s: _Session) -> str:
    branch = s.current_branch()
    if branch is not None:
        return f"repo at {s.path} on {branch}"
    sha = s.head_sha()
    return f"repo at {s.path}, detached at {sha[:7]}" if sha else f"repo at {s.path}"


# --------------------------------------------------------------------------- errors


def _git_message(exc: CommandError) -> str:
    """git's own reason, one line: the first ``fatal:``/``error:`` line of its stderr."""
    raw = str(exc.stderr or "")
    quoted = re.search(r"stderr: '(.*)'", raw, re.S)
    lines = [ln.strip() for ln in (quoted[1] if quoted else raw).splitlines() if ln.strip()]
    chosen = next((ln for ln in lines if ln.startswith(("fatal:", "error:"))), None)
    text = chosen or (lines[0] if lines else f"exit status {exc.status}")
    text = re.sub(r"^(fatal|error):\s*", "", text)
    return text if len(text) <= 200 else text[:199] + "…"


def _translate(exc: Exception, place: _Place) -> CalciferError:
    if isinstance(exc, InvalidGitRepositoryError | NoSuchPathError):
        return CalciferError(f"{place.path} is not a git repository ({place.origin})")
    if isinstance(exc, GitCommandNotFound):
        return IntegrationError("git is not installed where Calcifer runs", permanent=True)
    if isinstance(exc, CommandError):
        command = exc.command[1] if len(exc.command) > 1 else "git"
        reason = _git_message(exc)
        # Another git process holding a lock finishes; anything else stays wrong.
        transient = ".lock" in reason and "exists" in reason
        return IntegrationError(
            f"git {command} failed in {place.path}: {reason}", permanent=not transient
        )
    if isinstance(exc, BadName | BadObject):
        return NotFound(f"git could not find {exc} in {place.path}")
    if isinstance(exc, OSError):
        return IntegrationError(f"{place.path}: {exc.strerror or exc}", permanent=True)
    return IntegrationError(f"git failed in {place.path}: {exc}", permanent=True)


# --------------------------------------------------------------------------- the integration


class GitIntegration(Integration):
    name, title = "git", "Git"

    def __init__(
        self,
        default_repo: Path | str,
        repositories: Mapping[str, Path | str] | None = None,
        *,
        committer_name: str = "Calcifer",
        committer_email: str = "calcifer@localhost",
        changelog_style: changelog.Style = "keep-a-changelog",
        default_target: str = "main",
        default_guessed: bool = False,
    ) -> None:
        # default_guessed: CALCIFER_GIT_REPO was never set and default_repo is
        # only Settings' "." — see `configured`.
        self._default_guessed = default_guessed
        self._default = _Place(Path(default_repo).expanduser().absolute(), DEFAULT_ORIGIN)
        self._services = {
            service: _Place(Path(path).expanduser().absolute(), f"git.repositories.{service}")
            for service, path in (repositories or {}).items()
        }
        self.committer = (committer_name, committer_email)
        self.changelog_style: changelog.Style = changelog_style
        self.default_target = default_target
        self._locks: dict[Path, asyncio.Lock] = {}
        self._repos: dict[Path, git.Repo] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            settings.git_repo,
            settings.git.repositories,
            committer_name=settings.git.committer_name,
            committer_email=settings.git.committer_email,
            changelog_style=settings.git.changelog,
            default_target=settings.git.default_target,
            default_guessed=settings.origin("git_repo") == "default",
        )

    @property
    def configured(self) -> bool:
        """The default repository's path exists.

        When nobody configured it (the working directory, by default), it must
        also be a repository: someone who never set CALCIFER_GIT_REPO and runs
        Calcifer elsewhere is not using git, and `config check` should not fail.
        """
        if self._default_guessed:
            return (self._default.path / ".git").exists()
        return self._default.path.exists()

    def path(self, service: str | None = None) -> Path:
        """The repository a service's commands use: its own, else the default one.

        Configuration only, so not async: nothing is opened or checked.
        """
        return self._place(service).path

    def _place(self, service: str | None) -> _Place:
        return self._services.get(service, self._default) if service else self._default

    # -- running

    async def _run(self, service: str | None, fn: Callable[[_Session], T]) -> T:
        return await self._run_at(self._place(service), fn)

    async def _run_at(self, place: _Place, fn: Callable[[_Session], T]) -> T:
        lock = self._locks.setdefault(place.path, asyncio.Lock())
        async with lock:
            return await blocking(self._call, place, fn)

    def _call(self, place: _Place, fn: Callable[[_Session], T]) -> T:
        try:
            return fn(_Session(self._open(place), place, self.committer))
        except CalciferError:
            raise
        # Not ValueError: GitPython's ref objects raise it, but this module never
        # uses them, and from here it would only hide a bug behind "not found".
        except (git.GitError, BadName, BadObject, OSError) as exc:
            raise _translate(exc, place) from None

    def _open(self, place: _Place) -> git.Repo:
        repo = self._repos.get(place.path)
        if repo is None:
            repo = git.Repo(place.path)
            if repo.bare:
                repo.close()
                raise CalciferError(
                    f"{place.path} is a bare repository: Calcifer needs a work tree"
                )
            name, email = self.committer
            # Calcifer commits; the author is set per command. No prompts, and
            # `git status` must not rewrite the index of a repository it only reads.
            repo.git.update_environment(
                GIT_COMMITTER_NAME=name,
                GIT_COMMITTER_EMAIL=email,
                GIT_TERMINAL_PROMPT="0",
                GIT_OPTIONAL_LOCKS="0",
            )
            self._repos[place.path] = repo
        return repo

    # -- the five methods

    async def check_connectivity(self) -> Connectivity:
        parts: list[str] = []
        for place in (self._default, *self._services.values()):
            try:
                parts.append(place.label + await self._run_at(place, _describe_repo))
            except CalciferError as exc:
                return Connectivity(Reachability.CANNOT_CONNECT, place.label + exc.message)
        return Connectivity(Reachability.OK, "; ".join(parts))

    async def close(self) -> None:
        for path, repo in list(self._repos.items()):
            async with self._locks.setdefault(path, asyncio.Lock()):
                await blocking(repo.close)
            del self._repos[path]

    # -- branches

    async def create_branch(
        self,
        name: str,
        checkout: bool = True,
        *,
        start_point: str | None = None,
        service: str | None = None,
    ) -> BranchInfo:
        """A new branch from ``start_point``, else the default target, else HEAD."""
        check_branch_name(name)
        return await self._run(
            service, lambda s: _create_branch(s, name, checkout, start_point, self.default_target)
        )

    async def checkout_branch(self, name: str, *, service: str | None = None) -> BranchInfo:
        check_branch_name(name)
        return await self._run(service, lambda s: _checkout_branch(s, name))

    async def get_branches(
        self, service: str | None = None, *, target: str | None = None
    ) -> list[BranchInfo]:
        """Every local branch by name; with ``target``, each with its MergeStatus against it."""
        if target is not None:
            check_branch_name(target)
        return await self._run(service, lambda s: _branches(s, target))

    async def get_branch_info(
        self, branch: str, target: str | None = None, *, service: str | None = None
    ) -> BranchInfo:
        """The branch's tip, and its MergeStatus against ``target`` (None for the target itself)."""
        check_branch_name(branch)
        goal = check_branch_name(target or self.default_target)

        def info(s: _Session) -> BranchInfo:
            s.require_branch(branch)
            merge = None if branch == goal else _merge_status(s, branch, goal)
            return _branch_info(s, branch, merge)

        return await self._run(service, info)

    async def is_branch_merged(
        self, branch: str, target: str | None = None, *, service: str | None = None
    ) -> MergeStatus:
        check_branch_name(branch)
        goal = check_branch_name(target or self.default_target)
        return await self._run(service, lambda s: _merge_status(s, branch, goal))

    # -- changing things

    async def merge_branch(
        self,
        branch: str,
        target: str | None = None,
        *,
        author_name: str | None = None,
        author_email: str | None = None,
        service: str | None = None,
    ) -> str:
        """Merge ``branch`` into ``target`` with a merge commit; the target's new sha.

        Already merged: the target's sha, no new commit. The repository is left
        on the branch it was on before, whatever happens; a conflict aborts the
        merge and changes nothing.
        """
        check_branch_name(branch)
        goal = check_branch_name(target or self.default_target)
        return await self._run(
            service, lambda s: _merge_branch(s, branch, goal, (author_name, author_email))
        )

    async def commit(
        self,
        message: str,
        author_name: str | None = None,
        author_email: str | None = None,
        *,
        paths: Sequence[str] | None = None,
        service: str | None = None,
    ) -> str:
        """Commit what is staged plus ``paths`` (None: every change, ``git add -A``); the sha."""
        _check_message(message)
        return await self._run(
            service, lambda s: _commit_changes(s, message, (author_name, author_email), paths)
        )

    async def write_file(
        self,
        branch: str,
        path: str,
        content: str,
        message: str,
        *,
        author_name: str | None = None,
        author_email: str | None = None,
        service: str | None = None,
    ) -> str:
        """Commit ``content`` as ``path`` on ``branch``; HEAD goes back where it was."""
        check_branch_name(branch)
        _relative_path(path)
        _check_message(message)
        return await self._run(
            service,
            lambda s: _write_file(s, branch, path, content, message, (author_name, author_email)),
        )

    # -- reading

    async def get_status(self, service: str | None = None) -> RepoStatus:
        return await self._run(service, _repo_status)

    async def get_recent_commits(
        self, n: int = 10, *, branch: str | None = None, service: str | None = None
    ) -> list[CommitInfo]:
        """The last ``n`` commits of ``branch`` (default: HEAD), newest first."""
        if branch is not None:
            check_branch_name(branch)
        return await self._run(service, lambda s: _recent_commits(s, n, branch))

    async def recent_merges(
        self, since: datetime, *, target: str | None = None, service: str | None = None
    ) -> list[CommitInfo]:
        """What landed on ``target`` since ``since`` (naive: UTC), newest first."""
        goal = check_branch_name(target or self.default_target)
        return await self._run(service, lambda s: _recent_merges(s, since, goal))

    async def check_changes(
        self,
        branch: str | None = None,
        target: str | None = None,
        *,
        base: str | None = None,
        service: str | None = None,
    ) -> ChangesCheck:
        """Whether ``branch`` (default: the current one) adds a valid CHANGES.md entry.

        Compared with ``target``'s CHANGES.md, or with ``base``'s (a commit, such
        as the one a work item's branch was created at) when given.
        """
        if branch is not None:
            check_branch_name(branch)
        goal = check_branch_name(target or self.default_target)
        style = self.changelog_style
        return await self._run(service, lambda s: _changes(s, branch, goal, base, style))
