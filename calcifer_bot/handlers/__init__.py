"""Built-in command handlers; importing this package registers them."""

from calcifer_bot.handlers import basics, git, monitoring, notify, work  # noqa: F401
