"""Invoke the real `picsaris` command line in-process (models stay loaded between calls)."""

from click.testing import CliRunner

from picsaris_pipeline.cli import main


def picsaris(*args: str) -> str:
    """Run a command that must succeed; returns its stdout."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, f"picsaris {' '.join(args)} -> {result.exit_code}\n{result.output}"
    return result.stdout


def sign_up(event_id: str, selfies: dict[str, tuple[str, bool]], shared_photos: dict) -> dict[str, str]:
    """`picsaris attendee add` for each name -> (selfie file in ../shared/faces, consent); their ids."""
    attendees = {}
    for name, (selfie, consent) in selfies.items():
        flags = [] if consent else ["--no-consent"]
        attendees[name] = picsaris(
            "attendee", "add", event_id, "--name", name, "--selfie", str(shared_photos[selfie].path), *flags
        ).strip()
    return attendees


def shown_matches(event_id: str) -> list[dict]:
    """`picsaris matches EVENT --format json`: what guests see."""
    import json

    return json.loads(picsaris("matches", event_id, "--format", "json"))


def found_by_name(rows: list[dict]) -> dict[str, set[str]]:
    """Match rows as attendee name -> the file names they were found in."""
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["attendee_name"], set()).add(row["file_name"])
    return found
