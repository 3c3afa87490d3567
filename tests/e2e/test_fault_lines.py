"""A damaged store ends every `picsaris` command with one readable line on stderr and a non-zero exit,
never a traceback: real garbled files (the application's picsaris.db, Dagster's runs.db, event_log.db,
schedules.db and dagster.yaml) and a home that cannot be a directory, one case per command family."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from picsaris_pipeline.cli import main
from picsaris_pipeline.db.repository import dispose_all

BIN = Path(sys.executable).parent
GARBAGE = bytes(range(256)) * 16  # 4 KB that no SQLite or YAML reader accepts


def _jpeg(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (180, 120, 90)).save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue())
    return path


def _clean_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in list(os.environ):
        if name.startswith("PICSARIS_") and name != "PICSARIS_SHARED_FACES":
            monkeypatch.delenv(name)
    monkeypatch.setenv("PICSARIS_HOME", str(home))
    # Touched first so monkeypatch restores it: the CLI sets DAGSTER_HOME to the home it uses.
    monkeypatch.setenv("DAGSTER_HOME", "")
    monkeypatch.delenv("DAGSTER_HOME")


def _ok(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


@pytest.fixture(scope="module")
def working_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | Path]:
    """A working embedded home, made once: an event, an attendee with a selfie, a processed photo
    and the Dagster instance that ran it."""
    root = tmp_path_factory.mktemp("fault_lines")
    home = root / "home"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _clean_env(monkeypatch, home)
        event_id = _ok("event", "create", "Faults")
        selfie = _jpeg(root / "selfie.jpg")
        attendee_id = _ok("attendee", "add", event_id, "--name", "Ada", "--selfie", str(selfie), "--no-consent")
        photo_id = _ok("upload", event_id, "--uploader", attendee_id, str(_jpeg(root / "photo.jpg")))
        _ok("process")
        dispose_all()
    return {"home": home, "event": event_id, "attendee": attendee_id, "photo": photo_id, "selfie": selfie}


@pytest.fixture
def home(working_home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str | Path]]:
    """A copy of the working home for one test to damage."""
    home = tmp_path / "home"
    shutil.copytree(working_home["home"], home)
    _clean_env(monkeypatch, home)
    yield {**working_home, "home": home}
    dispose_all()  # the next test opens its own files afresh, as a new process would


def _garble(path: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(GARBAGE)


def _app_db(home: Path) -> None:
    _garble(home / "picsaris.db")


def _runs_db(home: Path) -> None:
    _garble(home / "dagster" / "history" / "runs.db")


def _event_log_db(home: Path) -> None:
    # The embedded default's event log, one file (Dagster's default layout had runs/index.db).
    _garble(home / "dagster" / "history" / "event_log.db")


def _schedules_db(home: Path) -> None:
    _garble(home / "dagster" / "schedules" / "schedules.db")


def _dagster_yaml(home: Path) -> None:
    (home / "dagster" / "dagster.yaml").write_bytes(b"storage:\n  sqlite: \xff\xfe\x00" + GARBAGE)


def _home_is_a_file(home: Path) -> None:
    shutil.rmtree(home)
    home.write_text("not a directory")


def _one_error_line(args: list[str]) -> str:
    """The command fails with exactly one `error:` line, its last (progress may come before it)."""
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code != 0, result.output
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert "Traceback" not in result.output and 'File "' not in result.output
    return errors[0]


CASES: list[tuple[str, Callable[[Path], None], Callable[[dict], list[str]], str]] = [
    ("app db / event", _app_db, lambda h: ["event", "create", "Another"], "picsaris.db is unreadable"),
    (
        "app db / attendee",
        _app_db,
        lambda h: ["attendee", "add", h["event"], "--name", "Bob", "--selfie", str(h["selfie"])],
        "picsaris.db is unreadable",
    ),
    ("app db / consent", _app_db, lambda h: ["attendee", "consent", h["attendee"], "--give"], "picsaris.db"),
    (
        "app db / upload",
        _app_db,
        lambda h: ["upload", h["event"], "--uploader", h["attendee"], str(h["selfie"])],
        "picsaris.db",
    ),
    ("app db / process", _app_db, lambda h: ["process"], "picsaris.db is unreadable"),
    ("app db / listings", _app_db, lambda h: ["photos", h["event"]], "picsaris.db is unreadable"),
    ("app db / matches", _app_db, lambda h: ["matches", h["event"], "--format", "json"], "picsaris.db"),
    ("app db / report", _app_db, lambda h: ["report", h["event"], "--out", str(h["home"].parent / "r")], "picsaris.db"),
    ("app db / reembed", _app_db, lambda h: ["reembed"], "picsaris.db is unreadable"),
    ("app db / photo delete", _app_db, lambda h: ["photo", "delete", h["photo"]], "picsaris.db"),
    ("runs.db / process", _runs_db, lambda h: ["process"], "Dagster's storage"),
    ("runs.db / rerun", _runs_db, lambda h: ["rerun", "--event", h["event"]], "runs.db is unreadable"),
    ("runs.db / event archive", _runs_db, lambda h: ["event", "archive", h["event"]], "runs.db is unreadable"),
    ("runs.db / attendee delete", _runs_db, lambda h: ["attendee", "delete", h["attendee"]], "runs.db"),
    ("event_log.db / process", _event_log_db, lambda h: ["process"], "event_log.db is unreadable"),
    (
        "event_log.db / photo delete",
        _event_log_db,
        lambda h: ["photo", "delete", h["photo"]],
        "event_log.db is unreadable",
    ),
    ("schedules.db / reembed", _schedules_db, lambda h: ["reembed"], "Dagster's storage"),
    ("dagster.yaml / process", _dagster_yaml, lambda h: ["process"], "dagster.yaml is unreadable"),
    ("home is a file / models", _home_is_a_file, lambda h: ["models"], "File exists"),
    ("home is a file / event", _home_is_a_file, lambda h: ["event", "create", "X"], "File exists"),
]


@pytest.mark.parametrize(("damage", "command", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_damaged_store_ends_the_command_in_one_line(home, damage, command, expected):
    damage(home["home"])
    line = _one_error_line(command(home))
    assert expected in line, line


def test_the_installed_command_prints_one_line_for_a_garbled_runs_db(home):
    """The console script as a user runs it: nothing but the one line on the real stderr."""
    _runs_db(home["home"])
    done = subprocess.run(
        [str(BIN / "picsaris"), "process"], capture_output=True, text=True, timeout=300, env=dict(os.environ)
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error: Dagster's storage"), done.stderr
    assert "runs.db" in done.stderr


def test_an_unrecognised_error_is_not_hidden():
    """Only store faults are translated: a bug keeps its traceback for whoever fixes it."""
    from picsaris_pipeline.services.fault_lines import translate_fault

    assert translate_fault(ZeroDivisionError("bug")) is None
    assert translate_fault(KeyError("x")) is None
