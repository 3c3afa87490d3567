"""Real dagster-webserver and dagster-daemon processes for end-to-end tests, on loopback."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from .environment import BIN, REPO_ROOT


def production_dagster_home(directory: Path) -> Path:
    """A DAGSTER_HOME holding a copy of the repository's production deploy/dagster.yaml."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", directory / "dagster.yaml")
    return directory


def dagster_postgres_url(sqlalchemy_url: str) -> str:
    """dagster-postgres hands the URL to psycopg2 too, which wants plain `postgresql://`."""
    return sqlalchemy_url.replace("postgresql+psycopg2://", "postgresql://", 1)


def log_tails(logs: Path, chars: int = 6000) -> str:
    """The end of each process log under logs, for a failure message."""
    return "\n".join(
        f"----- {log.name} (last {chars} characters) -----\n{log.read_text(errors='replace')[-chars:]}"
        for log in sorted(logs.glob("*.log"))
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def graphql(port: int, query: str, variables: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]


@contextmanager
def _process(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@contextmanager
def dagster_services(env: dict[str, str], logs: Path, daemon: bool = False) -> Iterator[int]:
    """Start dagster-webserver (and the daemon) with env; yields the port once /server_info answers."""
    port = free_port()
    with ExitStack() as stack:
        webserver = stack.enter_context(
            _process(
                [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                env,
                logs / "webserver.log",
            )
        )
        if daemon:
            stack.enter_context(
                _process([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, logs / "daemon.log")
            )
        wait_until_serving(webserver, port, logs / "webserver.log")
        yield port


def wait_until_serving(webserver: subprocess.Popen, port: int, log: Path, timeout: float = 180) -> None:
    """Return once the webserver on port answers /server_info; fail with its log if it exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if webserver.poll() is not None:
            raise AssertionError("dagster-webserver exited:\n" + log.read_text()[-3000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"dagster-webserver did not answer within {timeout:.0f} s") from None
            time.sleep(0.5)
