"""Work items: no change without one, no completion without docs and a CHANGES.md entry.

A work item is one change to the infrastructure: a branch of its own in the
service's repository, a checklist chosen by what kind of change it is, notes,
and an entry in CHANGES.md. What it takes to be done is decided here, in one
place, so ``work done`` can say exactly what is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from calcifer_bot.errors import NotFound
from calcifer_bot.models import WorkItem

CATEGORIES = ("platform_feature", "integration", "service", "documentation")
ACTIONS = ("new", "change", "fix")

# What every change of a kind needs, as the original Calcifer asked for it.
_BY_CATEGORY: dict[str, tuple[str, ...]] = {
    "platform_feature": (
        "Design agreed and written in a note",
        "Implemented on the work item's branch",
        "Tests added or updated",
        "README and docs updated",
    ),
    "integration": (
        "Integration class in integrations/, registered in the registry",
        "Configuration validated at start, secrets from the environment",
        "check_connectivity() answers ok / cannot connect / invalid auth",
        "Tests against a local server",
        "README and docs updated",
    ),
    "service": (
        "Service configuration committed to the repository",
        "Monitoring endpoint added (`endpoint add`)",
        "Backups cover the service's data",
        "Runbook written (`doc NAME --commit`)",
    ),
    "documentation": (
        "Documentation written",
        "Checked against the running system",
        "Links and commands in it tried",
    ),
}
_BY_ACTION: dict[str, tuple[str, ...]] = {
    "new": (),
    "change": ("Impact on existing users and data considered (migration, rollback)",),
    "fix": ("Cause found and written in a note", "A check or test that catches it again"),
}
_ALWAYS = ("CHANGES.md entry added on the branch",)
_SLUG_LENGTH = 40


def checklist(category: str, action: str) -> list[dict[str, Any]]:
    """The checklist for a new work item: what its kind of change needs, all open."""
    texts = (*_BY_ACTION[action], *_BY_CATEGORY[category], *_ALWAYS)
    return [{"text": text, "done": False} for text in texts]


def slug(title: str) -> str:
    """``Add NAS backups!`` → ``add-nas-backups``: safe in a branch name, short."""
    words = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    cut = words[:_SLUG_LENGTH].rstrip("-")
    return cut or "change"


def branch_name(category: str, action: str, title: str, created: datetime) -> str:
    return f"{category}/{action}/{slug(title)}-{created:%Y%m%d}"


@dataclass(frozen=True, slots=True)
class Readiness:
    """What ``work done`` found: empty ``missing`` means the item may close."""

    missing: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return not self.missing


def readiness(
    item: WorkItem, *, merged: bool, merge_detail: str, changes_problems: list[str]
) -> Readiness:
    """Everything between ``item`` and done, in the order a person would fix it."""
    missing: list[str] = []
    open_items = [i for i, entry in enumerate(item.checklist, 1) if not entry["done"]]
    if open_items:
        listed = ", ".join(f"{i}. {item.checklist[i - 1]['text']}" for i in open_items)
        missing.append(f"checklist items not ticked: {listed} (`work tick {item.id} N`)")
    if not item.notes:
        missing.append(f"no notes: say what changed and why (`work note {item.id} TEXT`)")
    missing += [f"CHANGES.md: {problem}" for problem in changes_problems]
    if not merged:
        missing.append(f"branch `{item.branch}` is not merged: {merge_detail}")
    return Readiness(tuple(missing))


def item_by_id(session: Session, item_id: int) -> WorkItem:
    item = session.get(WorkItem, item_id)
    if item is None:
        raise NotFound(f"there is no work item {item_id}; `work list` shows them")
    return item


def open_items(session: Session, service: str | None = None) -> list[WorkItem]:
    query = select(WorkItem).where(WorkItem.status == "open").order_by(WorkItem.id.desc())
    if service is not None:
        query = query.where(WorkItem.service == service)
    return list(session.scalars(query))
