"""Alembic's environment: runs the migrations on the connection planner.service.store.migrate hands over (the
server's own database URL; nothing is read from an alembic.ini)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the migrations through planner.service.store.migrate (it passes the connection)")
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
