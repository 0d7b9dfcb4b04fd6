"""The SQL store: SQLAlchemy 2 models and Alembic migrations. SQLite (WAL) by default."""
