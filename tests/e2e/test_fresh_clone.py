"""The first commands a Dagster user types, in a fresh clone with no environment set: no DAGSTER_HOME,
no DAGSTER_POSTGRES_URL, no PICSARIS_*. Dagster then loads the root dagster.yaml (the embedded
default's instance), so `dagster definitions validate`, `dagster dev` and `dg` work as they are;
`./dev` with no argument prints its help."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from picsaris_pipeline.orchestration.runner.instance import _INSTANCE_YAML
from picsaris_pipeline.sensors.quiet import is_idle_tick_line, without_idle_ticks
from tests.support.dagster_processes import free_port, graphql, wait_until_serving
from tests.support.environment import REPO_ROOT, missing

BIN = Path(sys.executable).parent
ASSETS = ["verified_upload", "faces_detected", "embeddings_stored", "matches_published", "event_summary"]
SENSORS = ["bucket_sensor", "upload_batch_sensor", "photo_failure_sensor", "realtime_outbox_sensor"]


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files a clone of this working tree holds (tracked and new, not ignored), elsewhere."""
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        missing("git and a git checkout are needed to list the files of a clone")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    clone = tmp_path_factory.mktemp("fresh") / "clone"
    for name in filter(None, listed.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():  # listed but deleted in the working tree: not in a clone either
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    return clone


def no_environment(clone: Path) -> dict[str, str]:
    """The caller's environment without any Dagster or picsaris setting; the clone's code on the path
    (as `pip install -e .` in the clone would put it) and this interpreter's commands first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "PICSARIS_")) and k != "VIRTUAL_ENV"}
    return {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "PYTHONPATH": str(clone), "COLUMNS": "250"}


def run(command: list[str], clone: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=clone, env=no_environment(clone), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def dagster_dev(fresh_clone: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """`dagster dev -w workspace.yaml` in the clone on a free loopback port, until /server_info
    answers; the port and its log. Its whole process group is stopped at the end."""
    port, log = free_port(), tmp_path_factory.mktemp("dagster-dev") / "dagster-dev.log"
    command = [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    with open(log, "wb") as output:
        environment = no_environment(fresh_clone)
        process = subprocess.Popen(
            command, cwd=fresh_clone, env=environment, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_serving(process, port, log)
        yield port, log
    finally:
        # SIGTERM asks dagster dev to stop its webserver, daemon and code server, but on the
        # machine this test was written on its webserver outlived it: after 20 s the group is killed.
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def test_the_root_instance_is_the_one_picsaris_writes_for_the_embedded_default():
    root = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    assert root == yaml.safe_load(_INSTANCE_YAML)
    # Nothing read from the environment: the storage is Dagster's SQLite default under its home.
    assert "storage" not in root and "env:" not in (REPO_ROOT / "dagster.yaml").read_text()
    assert root["telemetry"] == {"enabled": False}


# Without -w, Dagster loads pyproject.toml's [tool.dagster] module (definitions.location).
@pytest.mark.parametrize("target", [["-w", "workspace.yaml"], []], ids=["workspace.yaml", "pyproject.toml"])
def test_definitions_validate_in_a_fresh_clone_with_no_environment(fresh_clone, target):
    result = run([str(BIN / "dagster"), "definitions", "validate", *target], fresh_clone)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "All code locations passed validation" in output
    assert "DAGSTER_POSTGRES_URL" not in output


def test_dagster_dev_serves_the_ui_on_the_root_instance_in_a_fresh_clone(dagster_dev):
    port, log = dagster_dev
    launcher = graphql(port, "{ instance { runLauncher { name } } }")["instance"]["runLauncher"]
    assert launcher == {"name": "WarmRunLauncher"}  # the root dagster.yaml's, not Dagster's default
    assert "DAGSTER_POSTGRES_URL" not in log.read_text(errors="replace")


def test_the_terminal_drops_the_daemons_lines_of_idle_sensor_ticks_only(dagster_dev):
    _, log = dagster_dev
    deadline = time.monotonic() + 120  # the daemon's first ticks come a few seconds after the UI
    first_ticks = ("Sensor upload_batch_sensor skipped", "Sensor photo_failure_sensor skipped")
    while not all(tick in log.read_text(errors="replace") for tick in first_ticks):
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
        time.sleep(1)
    lines = log.read_text(errors="replace").splitlines(keepends=True)
    idle = [line for line in lines if is_idle_tick_line(line)]
    assert any("Sensor upload_batch_sensor skipped: no photos queued for a batch" in line for line in idle)
    assert any("Checking for new runs for sensor: upload_batch_sensor" in line for line in idle)
    kept = "".join(without_idle_ticks(lines))
    assert "Serving dagster-webserver on" in kept
    # The failure sensor's first tick tells something (it sets its cursor): it stays.
    assert "Sensor photo_failure_sensor skipped: Initiating" in kept
    assert "no photos queued for a batch" not in kept


def _dg() -> str:
    found = shutil.which("dg", path=str(BIN))
    if found is None:
        missing("dg is not installed in this environment (pip install -e '.[dev]' installs dagster-dg-cli)")
    assert found is not None
    return found


def test_dg_checks_and_lists_the_definitions_in_a_fresh_clone(fresh_clone):
    dg = _dg()
    checked = run([dg, "check", "defs"], fresh_clone)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = run([dg, "list", "defs"], fresh_clone)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for name in [*ASSETS, *SENSORS, "process_photo"]:
        assert name in listed.stdout, name


def _help_block() -> str:
    """The comment block at the top of ./dev, without the '# ' markers."""
    lines = (REPO_ROOT / "dev").read_text().splitlines()[1:]
    block = lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))]
    return "".join(line.removeprefix("#").removeprefix(" ") + "\n" for line in block)


@pytest.mark.parametrize(("arguments", "status"), [([], 0), (["help"], 0), (["no-such-command"], 1)])
def test_dev_without_a_known_command_prints_exactly_its_comment_block(fresh_clone, arguments, status):
    result = run(["bash", str(fresh_clone / "dev"), *arguments], fresh_clone)
    assert result.returncode == status, result.stderr
    assert result.stdout == _help_block()
    assert "set -" not in result.stdout
    assert not (fresh_clone / ".venv").exists()  # the help installs nothing
