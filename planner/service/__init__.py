"""The job service: NeMo Customizer's v1 REST API in front of the planner (`python -m planner.serve`).

A POST becomes the config the CLI would compose (translate), is planned with the same checks (planning), compiled
into a bundle under the jobs folder and handed to an executor (executors), which runs the bundle's own run script
in a process of its own: the server never trains. The store (SQLAlchemy 2: SQLite by default, PostgreSQL with
DATABASE_URL; Alembic migrations in migrations/) keeps the jobs across restarts; progress is read from the
bundle's status.json and metrics.jsonl files (progress). app builds the FastAPI application.

Only this package imports fastapi, uvicorn, SQLAlchemy and Alembic (the `service` extra); the planner's cold start
does not pay for them, and nothing here imports torch.
"""
