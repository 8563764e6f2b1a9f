"""Alembic migrations of the job store (env.py, versions/); planner.service.store.migrate runs them at start."""
