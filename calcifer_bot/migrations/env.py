"""Alembic environment: Calcifer always hands in an open connection."""

from alembic import context

from calcifer_bot.models import Base, UTCDateTime


def render_item(kind: str, obj: object, _context: object) -> str | bool:
    # Migrations stay plain SQLAlchemy: they must not break when models.py changes.
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    compare_type=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
