"""The database: engine and transactions, the SQLModel tables, the alembic migrations."""
