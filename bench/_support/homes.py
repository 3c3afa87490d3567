"""Isolated embedded-default homes and Postgres databases, and guests signed up in them."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import BIN, FACES, PG_ADMIN_DSN, SELFIES
from .rss import RssSampler


# -- isolated homes and databases ---------------------------------------------------------------
def _pg_admin() -> Any:
    import psycopg2

    connection = psycopg2.connect(PG_ADMIN_DSN)
    connection.autocommit = True
    return connection


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh database on the machine's Postgres, dropped afterwards; yields its psycopg2 URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = _pg_admin()  # not `with admin:`, which would open a transaction CREATE DATABASE refuses
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin = _pg_admin()
        try:
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.close()


def sqlalchemy_url(pg_url: str) -> str:
    return pg_url.replace("postgresql://", "postgresql+psycopg2://", 1)


@dataclass
class Home:
    """One isolated embedded-default home (PICSARIS_HOME), optionally with the application database on
    Postgres. `env` is for subprocesses; `activate()` points this process's intake at it too."""

    root: Path
    env: dict[str, str]

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    def activate(self) -> None:
        """Make App.from_env() in this process use this home (intake calls made here, as an API does)."""
        for key in [k for k in os.environ if k.startswith("PICSARIS_") or k == "DAGSTER_HOME"]:
            del os.environ[key]
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("PICSARIS_") or k == "DAGSTER_HOME"})

    def app(self) -> Any:
        from picsaris_pipeline.orchestration.app import App

        self.activate()
        return App.from_env()

    def picsaris(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            [str(BIN / "picsaris"), *args], env=env or self.env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise SystemExit(
                f"picsaris {' '.join(args[:3])} ... failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
            )
        return result.stdout

    def picsaris_measured(self, *args: str) -> tuple[str, float, float, int]:
        """(stdout, wall seconds, peak RSS in MiB of the largest process of its tree, processes seen).
        The peak is wait4's ru_maxrss (the process and its reaped children, the largest of them),
        or the sampled VmHWM of a worker if that was larger."""
        with open(self.root / "cmd.out", "w+b") as out, open(self.root / "cmd.err", "w+b") as err:
            start = time.perf_counter()
            process = subprocess.Popen([str(BIN / "picsaris"), *args], env=self.env, stdout=out, stderr=err)
            with RssSampler(lambda: [process.pid], everything_runs=True) as sampler:
                _, status, usage = os.wait4(process.pid, 0)
            elapsed = time.perf_counter() - start
            process.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(), err.read().decode()
        if process.returncode != 0:
            raise SystemExit(f"picsaris {' '.join(args)} failed ({process.returncode}):\n{stderr[-4000:]}")
        seen, sampled = sampler.peak_mib("run")
        return stdout, elapsed, max(usage.ru_maxrss / 1024, sampled if seen else 0.0), seen


@contextmanager
def home(root: Path, app_postgres: bool = False, extra_env: dict[str, str] | None = None) -> Iterator[Home]:
    root.mkdir(parents=True, exist_ok=True)
    dagster = ("DAGSTER_HOME", "DAGSTER_POSTGRES_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICSARIS_") and k not in dagster}
    env["PICSARIS_HOME"] = str(root)
    with ExitStack() as stack:
        if app_postgres:
            url = stack.enter_context(postgres_database("picsaris_bench_app"))
            env["PICSARIS_DATABASE_URL"] = sqlalchemy_url(url)
            env["PICSARIS_REALTIME"] = "pg_notify"
        env.update(extra_env or {})
        try:
            yield Home(root, env)
        finally:
            from picsaris_pipeline.db.repository import dispose_all

            dispose_all()  # close pooled connections before the database is dropped


@dataclass(frozen=True)
class Event:
    id: str
    guests: dict[str, str]  # name -> attendee id


def sign_up(h: Home, name: str, extra_uploaders: Sequence[str] = ()) -> Event:
    """An event with the named guests (selfies; one without consent), references built by `picsaris
    process` before any photo arrives, and guests who only upload (no selfie). Writes the embedded
    instance's dagster.yaml under the home as a side effect of `picsaris process`."""
    event_id = h.picsaris("event", "create", name).strip()
    guests = {}
    for guest, (selfie, consent) in SELFIES.items():
        flags = [] if consent else ["--no-consent"]
        guests[guest] = h.picsaris(
            "attendee", "add", event_id, "--name", guest, "--selfie", str(FACES / selfie), *flags
        )
        guests[guest] = guests[guest].strip()
    h.picsaris("process")
    if extra_uploaders:
        from picsaris_pipeline.services.intake import register_attendee

        app = h.app()
        for guest in extra_uploaders:
            guests[guest] = register_attendee(app.repo, app.store, event_id, guest, True, None, None).id
    return Event(event_id, guests)
