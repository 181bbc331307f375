"""Alembic environment: Calcifer always hands in an open connection."""

from typing import Literal

from alembic import context

from calcifer_bot.models import Base, UTCDateTime


def render_item(kind: str, obj: object, _context: object) -> str | Literal[False]:
    # Migrations stay plain SQLAlchemy: they must not break when models.py changes.
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


def skip_empty(_context: object, _revision: object, directives: list) -> None:
    if directives and directives[0].upgrade_ops.is_empty():
        directives[:] = []  # models and migrations agree: write nothing


config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    compare_type=True,
    render_item=render_item,
    process_revision_directives=skip_empty,
)
with context.begin_transaction():
    context.run_migrations()
