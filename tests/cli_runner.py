"""Invoke the real `picsaris` command line in-process (models stay loaded between calls)."""

from click.testing import CliRunner

from picsaris_pipeline.cli import main


def picsaris(*args: str) -> str:
    """Run a command that must succeed; returns its stdout."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, f"picsaris {' '.join(args)} -> {result.exit_code}\n{result.output}"
    return result.stdout
