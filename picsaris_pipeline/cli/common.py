"""What every `picsaris` command shares: errors as one line, tables on stdout, progress on stderr."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

from picsaris_pipeline.errors import PicsarisError


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Project errors become one readable line and exit status 2, never a traceback."""
    try:
        yield
    except PicsarisError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except OSError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)


def emit(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str) -> None:
    """Rows as CSV with a header (for spreadsheets and scripts) or as a JSON list."""
    if fmt == "json":
        click.echo(json.dumps(list(rows), indent=2))
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    click.echo(buffer.getvalue(), nl=False)


# The --format option of every listing.
format_option = click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)


class Progress:
    """A progress bar on stderr for long uploads and processing runs."""

    def __init__(self, label: str, total: int) -> None:
        self._bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)
        self._bar.__enter__()

    def advance(self, *_: Any) -> None:
        self._bar.update(1)

    def close(self) -> None:
        self._bar.__exit__(None, None, None)
