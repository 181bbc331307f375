"""Notification providers: one module and one class per service.

Adding one touches its module, one line here, its test file and CHANGES.md.
Modules are imported only when a destination of their type is configured, so
a provider's optional library (Apprise) is needed only by those who use it.
"""

from __future__ import annotations

import importlib

from integrations.notify.base import Provider

# destination type -> "module:Class"
PROVIDERS: dict[str, str] = {
    "slack-webhook": "integrations.notify.slack_webhook:SlackWebhook",
    "discord-webhook": "integrations.notify.discord_webhook:DiscordWebhook",
    "webhook": "integrations.notify.webhook:Webhook",
    "email": "integrations.notify.mail:Email",
    "apprise": "integrations.notify.apprise_url:AppriseURL",
}


def provider_class(type_: str) -> type[Provider]:
    module, _, cls = PROVIDERS[type_].partition(":")
    return getattr(importlib.import_module(module), cls)
