"""Who may do what: viewer < operator < admin."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

CONSOLE_IDENTITY = "console:local"
PLATFORMS = ("slack", "discord", "discord-role", "console")


class Role(IntEnum):
    VIEWER = 0
    OPERATOR = 1
    ADMIN = 2

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls[value.strip().upper()]
        except KeyError:
            raise ValueError(f"expected viewer, operator or admin, got {value!r}") from None


@dataclass(frozen=True, slots=True)
class Resolved:
    role: Role
    source: str  # why: "CALCIFER_ADMINS", "granted by slack:U1", "default role"…


def resolve(
    identity: str,
    groups: frozenset[str],
    *,
    admins: frozenset[str],
    operators: frozenset[str],
    grants: dict[str, Role],
    default: Role,
) -> Resolved:
    """The highest role any source gives ``identity`` (or one of its groups)."""
    if identity == CONSOLE_IDENTITY:
        # Whoever has a shell on the host already has everything.
        return Resolved(Role.ADMIN, "console user")
    names = {identity, *groups}
    candidates = [Resolved(default, "default role")]
    if names & admins:
        candidates.append(Resolved(Role.ADMIN, "CALCIFER_ADMINS"))
    if names & operators:
        candidates.append(Resolved(Role.OPERATOR, "CALCIFER_OPERATORS"))
    candidates += [Resolved(grants[n], "granted in chat") for n in names if n in grants]
    return max(candidates, key=lambda r: r.role)


def check_identity(value: str) -> str:
    """Validate a platform-qualified id such as ``slack:U123`` or ``discord-role:42``."""
    platform, sep, user = value.strip().partition(":")
    if not sep or not user or platform not in PLATFORMS or " " in user:
        raise ValueError(
            f"{value!r} is not a platform-qualified id like slack:U123, discord:456 "
            "or discord-role:789"
        )
    return f"{platform}:{user}"
