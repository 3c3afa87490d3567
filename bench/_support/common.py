"""What every part of the benchmarks' support shares: the repository's root on sys.path (for
tests.support), the interpreter's bin folder, the shared faces and the named guests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# `python bench/x.py` puts bench/ on sys.path, not the repository: tests.support needs the root.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# What the tests do the same way, for the other modules here (imported after the path is set).
from tests.support.dagster_processes import free_port, graphql, wait_until_serving  # noqa: E402, F401
from tests.support.phone_uploads import Outcome, UnexpectedDuplicate, upload_as_a_phone  # noqa: E402, F401
from tests.support.phone_uploads import wait_terminal as wait_terminal_in  # noqa: E402, F401

BIN = Path(sys.executable).parent
FACES = Path(os.environ.get("PICSARIS_SHARED_FACES", REPO.parent / "shared" / "faces"))
PG_ADMIN_DSN = os.environ.get("PICSARIS_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

# The named guests who sign up with a selfie before any photo arrives (as in bench/model_switch.py):
# name -> (selfie file, consent). Their other photos are in the upload set, so matching has work.
SELFIES: dict[str, tuple[str, bool]] = {
    "Barack Obama": ("obama_1.jpg", True),
    "Kit Harington": ("kit_harington_2.jpg", True),
    "Alex Lacamoire": ("alex_lacamoire_2.jpg", True),
    "Rose Leslie": ("rose_leslie_1.jpg", False),
    "Tom Cruise": ("tom_cruise_1.jpg", True),
    "Joe Biden": ("biden_2.jpg", True),
}
