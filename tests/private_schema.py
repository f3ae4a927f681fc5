"""A PostgreSQL schema of a test's own, for writers that really commit (concurrency tests)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Engine, Table, text

from store.db import Base, make_engine


@contextmanager
def private_schema(database_url: str, schema: str, tables: Sequence[Table], pool_size: int) -> Iterator[Engine]:
    """An engine whose connections see only ``schema``, holding ``tables``; dropped afterwards."""
    admin = make_engine(database_url)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(database_url, connect_args={"options": f"-csearch_path={schema}"}, pool_size=pool_size)
    Base.metadata.create_all(engine, tables=list(tables))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
