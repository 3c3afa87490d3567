"""The command line's last boundary: a damaged store ends in one readable line, never a traceback.

Faults of the stores we keep state in surface far from our code: a garbled `picsaris.db` fails in
SQLAlchemy's connection setup, a garbled Dagster `runs.db`, `event_log.db` (`index.db` on older
homes) or `schedules.db` inside Dagster's schema check, a binary `dagster.yaml` in the YAML
reader. They are translated here into the project's `UnreadableStoreError` naming the file, so
every `picsaris` command prints `error: ...` and exits 2. Anything not recognised as a store
fault is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sqlite3
import types
from pathlib import Path
from typing import Any

import click

from picsaris_pipeline.errors import PicsarisError, UnreadableStoreError

EXIT_STATUS = 2  # as the commands' own error handler (cli._errors)


def translate_fault(error: BaseException) -> PicsarisError | None:
    """The project error for a store fault, or None when `error` is not one."""
    import sqlalchemy.exc
    import yaml

    if isinstance(error, PicsarisError):
        return error
    if isinstance(error, sqlalchemy.exc.DBAPIError) and _is_damaged(error):
        detail = _first_line(error.orig or error)
        where = _database_of(error.__traceback__)
        if _raised_in_dagster(error.__traceback__):
            name = f"Dagster's storage {where}" if where else f"Dagster's storage under {_dagster_home()}"
            return UnreadableStoreError(
                f"{name} is unreadable ({detail}): move the damaged file aside or restore it from a backup"
            )
        name = f"the application database {where}" if where else "the application database"
        return UnreadableStoreError(f"{name} is unreadable ({detail}): restore it from a backup")
    if isinstance(error, sqlite3.DatabaseError):
        return UnreadableStoreError(f"a database file is unreadable ({_first_line(error)})")
    if _raised_in_dagster(error.__traceback__) and isinstance(error, UnicodeDecodeError | yaml.YAMLError):
        config = _dagster_home() / "dagster.yaml"
        return UnreadableStoreError(f"Dagster's instance configuration {config} is unreadable ({_first_line(error)})")
    if _raised_in_dagster(error.__traceback__) and type(error).__name__ == "DagsterInvalidConfigError":
        return UnreadableStoreError(
            f"Dagster's instance configuration under {_dagster_home()} is invalid ({_first_line(error)})"
        )
    return None


class FaultBoundary(click.Group):
    """A click group whose commands end a store fault with one line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as error:
            translated = translate_fault(error)
            if translated is None:
                raise
            click.echo(f"error: {translated}", err=True)
            ctx.exit(EXIT_STATUS)


# Driver messages that mean the file itself is damaged or not a database at all (SQLite), as
# opposed to a busy or unreachable server (retryable, translated in the repository).
_DAMAGE_WORDS = ("file is not a database", "malformed", "disk i/o error", "file is encrypted", "unable to open")


def _is_damaged(error: Any) -> bool:
    text = str(error.orig if error.orig is not None else error).lower()
    return any(word in text for word in _DAMAGE_WORDS)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _frames(tb: types.TracebackType | None) -> list[types.FrameType]:
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames


def _raised_in_dagster(tb: types.TracebackType | None) -> bool:
    return any(f"{os.sep}dagster{os.sep}" in frame.f_code.co_filename for frame in _frames(tb))


def _database_of(tb: types.TracebackType | None) -> str | None:
    """The database the failing SQLAlchemy connection was opened on, found on the traceback's
    frames (the exception itself does not carry it); its password hidden."""
    import sqlalchemy

    for frame in reversed(_frames(tb)):
        owner = frame.f_locals.get("self")
        engine = getattr(owner, "engine", None) if isinstance(owner, sqlalchemy.Connection) else None
        if isinstance(owner, sqlalchemy.Engine):
            engine = owner
        if engine is not None:
            url = engine.url
            if url.get_backend_name() == "sqlite" and url.database:
                return str(Path(url.database))
            return url.render_as_string(hide_password=True)
    return None


def _dagster_home() -> Path:
    from picsaris_pipeline.settings import Settings

    home = os.environ.get("DAGSTER_HOME")
    return Path(home) if home else Settings.from_env().dagster_home
