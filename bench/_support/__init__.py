"""What the benchmarks share: the photo set, the bare face work, isolated homes, the Dagster webserver
and daemon, uploads the way a phone makes them, watching photos reach `published`, run breakdowns,
peak RSS of run processes, and the tables they print.

Not part of the package: bench/ scripts import it as `_support` (Python puts the script's folder
first on sys.path). What the tests do the same way (free ports, waiting for the webserver, its
GraphQL API, uploads as a phone makes them, the terminal statuses) comes from tests/support, so the
two cannot drift apart. Only public pipeline interfaces are used (the CLI, intake, the launcher, the
repository, Dagster's instance API), so the benchmarks keep working while the pipeline's internals
change.
"""

from __future__ import annotations

from .bare import bare_loop, bare_one, bare_parallel
from .common import (
    BIN,
    FACES,
    PG_ADMIN_DSN,
    REPO,
    SELFIES,
    Outcome,
    UnexpectedDuplicate,
    free_port,
    graphql,
    upload_as_a_phone,
    wait_terminal_in,
    wait_until_serving,
)
from .figures import add_service_options, git_state, keep_dir, machine, note, parse_env, percentile, summary, table
from .homes import Event, Home, home, postgres_database, sign_up, sqlalchemy_url
from .photo_set import (
    DARK,
    GREY,
    MIN_VARIANT_DISTANCE,
    WHITE,
    BenchPhoto,
    SourcePhoto,
    closest_variants,
    describe_photos,
    hamming,
    make_photos,
    phash,
    photo_mix,
    read_manifest,
)
from .rss import RssSampler, classify
from .run_times import RunTimes, run_times
from .services import DagsterServices, RunQueue, dagster_services, instance_yaml
from .uploads import NotifyListener, Upload, outbox_sent_at, steady_uploads, upload, upload_phases, wait_terminal

__all__ = [
    "BIN",
    "DARK",
    "FACES",
    "GREY",
    "MIN_VARIANT_DISTANCE",
    "PG_ADMIN_DSN",
    "REPO",
    "SELFIES",
    "WHITE",
    "BenchPhoto",
    "DagsterServices",
    "Event",
    "Home",
    "NotifyListener",
    "Outcome",
    "RssSampler",
    "RunQueue",
    "RunTimes",
    "SourcePhoto",
    "UnexpectedDuplicate",
    "Upload",
    "add_service_options",
    "bare_loop",
    "bare_one",
    "bare_parallel",
    "classify",
    "closest_variants",
    "dagster_services",
    "describe_photos",
    "free_port",
    "git_state",
    "graphql",
    "hamming",
    "home",
    "instance_yaml",
    "keep_dir",
    "machine",
    "make_photos",
    "note",
    "outbox_sent_at",
    "parse_env",
    "percentile",
    "phash",
    "photo_mix",
    "postgres_database",
    "read_manifest",
    "run_times",
    "sign_up",
    "sqlalchemy_url",
    "steady_uploads",
    "summary",
    "table",
    "upload",
    "upload_as_a_phone",
    "upload_phases",
    "wait_terminal",
    "wait_terminal_in",
    "wait_until_serving",
]
