"""One file per migration, oldest first (Alembic skips this file)."""
