"""Calcifer: a chat-ops assistant for homelabs and small ops teams."""

__version__ = "0.1.0"
