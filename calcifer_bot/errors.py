"""The one error family Calcifer raises on purpose.

Every message is written for a person in a chat channel: short, no traceback,
no secrets. Library exceptions are translated into these at an integration's
edge; only the dispatcher catches anything broader.
"""


class CalciferError(Exception):
    """A failure whose message is safe to show in chat.

    ``permanent`` tells retrying code (the outbox, integrations) whether trying
    again later can help: a refused connection may heal, invalid auth will not.
    """

    permanent: bool = True

    def __init__(self, message: str, *, permanent: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if permanent is not None:
            self.permanent = permanent


class UsageError(CalciferError):
    """The caller typed something that does not fit a command; usage is shown."""


class PermissionDenied(CalciferError):
    """The caller's role does not allow the command."""


class NotFound(CalciferError):
    """A named thing (endpoint, work item, incident…) does not exist."""


class IntegrationError(CalciferError):
    """An external system failed; ``permanent=False`` when a retry may help.

    ``retry_after`` is how long the service asked us to wait (a 429's
    Retry-After), in seconds: the outbox waits that long instead of backing off.
    """

    permanent = False

    def __init__(
        self, message: str, *, permanent: bool | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, permanent=permanent)
        self.retry_after = retry_after


class ConfigError(CalciferError):
    """Configuration is invalid; start-up stops with this one-line message."""
