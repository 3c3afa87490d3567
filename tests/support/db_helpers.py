"""Raw SQL for tests that set up or check state the repository has no method for, in one place."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from picsaris_pipeline.db.migrate import upgrade
from picsaris_pipeline.db.repository import Repository


@contextmanager
def reading(repo: Repository) -> Iterator[Connection]:
    """A connection to the repository's database, for reads a test makes itself."""
    with repo.engine.connect() as conn:
        yield conn


@contextmanager
def writing(repo: Repository) -> Iterator[Connection]:
    """A transaction on the repository's database, committed at the end of the block."""
    with repo.engine.begin() as conn:
        yield conn


def count_rows(repo: Repository, table: sa.Table, *conditions: Any, **equal: object) -> int:
    """How many rows of `table` meet every condition, and have each column of `equal` at its value."""
    query = sa.select(sa.func.count()).select_from(table)
    for condition in conditions:
        query = query.where(condition)
    for column, value in equal.items():
        query = query.where(table.c[column] == value)
    with reading(repo) as conn:
        return int(conn.execute(query).scalar_one())


def fetch_rows(repo: Repository, query: sa.Executable) -> list[Row[Any]]:
    """Every row the query returns."""
    with reading(repo) as conn:
        return list(conn.execute(query).all())


def update_rows(repo: Repository, table: sa.Table, *conditions: Any, **values: object) -> int:
    """Set `values` on the rows of `table` that meet every condition (all rows without one); returns
    how many rows matched."""
    statement = table.update()
    for condition in conditions:
        statement = statement.where(condition)
    with writing(repo) as conn:
        return int(conn.execute(statement.values(**values)).rowcount)


def insert_rows(repo: Repository, table: sa.Table, rows: Sequence[Mapping[str, object]]) -> None:
    """Insert rows as they are, bypassing the repository's checks."""
    with writing(repo) as conn:
        conn.execute(table.insert(), list(rows))


@contextmanager
def statements_run(repo: Repository) -> Iterator[list[str]]:
    """Collects the SQL of every statement sent to the database during the block."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(repo.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(repo.engine, "before_cursor_execute", record)


@contextmanager
def commits(repo: Repository) -> Iterator[list[int]]:
    """Counts the transactions committed during the block."""
    count = [0]

    def record(_conn: Connection) -> None:
        count[0] += 1

    sa.event.listen(repo.engine, "commit", record)
    try:
        yield count
    finally:
        sa.event.remove(repo.engine, "commit", record)


def migrate_again(repo: Repository) -> None:
    """Run the migrations once more on the repository's database (they ran when it connected)."""
    upgrade(repo.engine)


def has_table(repo: Repository, name: str) -> bool:
    """Whether the database has this table."""
    return sa.inspect(repo.engine).has_table(name)


def url_shown(repo: Repository) -> str:
    """The database's URL as SQLAlchemy shows it (str/repr hide the password)."""
    return str(repo.engine.url)
