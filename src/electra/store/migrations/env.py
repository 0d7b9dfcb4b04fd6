"""Alembic environment: runs on the connection Electra hands over (see store/db.py)."""

from alembic import context
from sqlalchemy import create_engine

from electra.store.models import Base

config = context.config
connection = config.attributes.get("connection")

if connection is None:
    # Run from the alembic command line: take the URL from the ini or ELECTRA_DB_URL.
    import os

    url = os.environ.get("ELECTRA_DB_URL") or config.get_main_option("sqlalchemy.url")
    with create_engine(url).begin() as conn:
        context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    context.run_migrations()
