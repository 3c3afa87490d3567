"""Idle sensor ticks stay out of the terminal.

Dagster's sensor daemon logs two INFO lines for every tick it evaluates, whatever the sensor returns:
"Checking for new runs for sensor: NAME", then "Sensor NAME skipped: REASON" for a SkipReason or
"No run requests returned for NAME, skipping" for an empty SensorResult (dagster/_daemon/sensor.py,
`_evaluate_sensor`). So no return value makes an idle tick quiet, and a longer interval would only
make the lines rarer while photos queued for a batch waited longer. Instead the sensors give their
idle ticks one of the reasons below, and `./dev ui` pipes Dagster's output through `main`, which
drops the lines of a tick that found nothing to do. The UI still lists every tick with its reason;
a tick that launched runs, did some work or failed keeps its lines.
"""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Iterable, Iterator

NO_QUEUED_PHOTOS = "no photos queued for a batch"
NO_ABANDONED_RUNS = "no abandoned runs"
NO_QUEUED_MESSAGES = "no realtime messages queued"
NO_EVENTS_DUE = "no events due for archiving"


def no_new_uploads(keys_seen: int) -> str:
    return f"no new uploads among {keys_seen} keys"


_IDLE_REASON = "|".join(
    [
        re.escape(NO_QUEUED_PHOTOS),
        re.escape(NO_ABANDONED_RUNS),
        re.escape(NO_QUEUED_MESSAGES),
        re.escape(NO_EVENTS_DUE),
        r"no new uploads among \d+ keys",
    ]
)
# The daemon's per-tick lines (after its timestamp and level prefix, possibly in colour codes).
_IDLE_TICK_LINE = re.compile(rf"Checking for new runs for sensor: |Sensor \S+ skipped: (?:{_IDLE_REASON})\s*$")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def is_idle_reason(reason: str | None) -> bool:
    return reason is not None and re.fullmatch(_IDLE_REASON, reason) is not None


def is_idle_tick_line(line: str) -> bool:
    """A line the daemon logs for a tick that found nothing to do. "Checking for new runs" starts
    every tick and says nothing the tick's outcome line does not, so it always goes."""
    return _IDLE_TICK_LINE.search(_COLOUR.sub("", line)) is not None


def without_idle_ticks(lines: Iterable[str]) -> Iterator[str]:
    return (line for line in lines if not is_idle_tick_line(line))


def main() -> None:
    # Ctrl-C reaches every process of `./dev ui`'s pipeline: this one keeps passing Dagster's
    # shutdown lines through until Dagster closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for line in without_idle_ticks(sys.stdin):
        sys.stdout.write(line)
        sys.stdout.flush()
