"""The embedded default's event log: one SQLite file, `<instance home>/history/event_log.db`.

Dagster's default SQLite event log keeps one database file per run beside an index that repeats
every asset event. An empty run file already holds ~140 KB of schema pages, and a photo's
materializations were stored twice: with batch runs of a few photos, ~53 KB of run files and
~36 KB of index per photo (bench/storage.py, docs/PERFORMANCE.md). Dagster's
ConsolidatedSqliteEventLogStorage keeps every event once, in one file, and a deleted run's events
really leave it. Its configuration needs the folder spelled out, which the root dagster.yaml
cannot do (it is used from a fresh clone, where `dagster dev` makes up a temporary home):
HomeEventLogStorage takes the folder from the instance it is registered with instead.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections import defaultdict
from typing import Any

import dagster as dg

from picsaris_pipeline.orchestration.dagster_internals import (
    ConfigurableClassData,
    ConsolidatedSqliteEventLogStorage,
    SqlEventLogStorage,
    sqlite_conn_string,
)

EVENT_LOG_FILE = "event_log"  # Dagster's name: history/event_log.db
# A stored event is a serialized JSON of 1-6 KB; SQLite keeps ~1 KB of a row in its b-tree page and
# the rest in overflow pages, whose last one is on average half empty: smaller pages waste less.
# The same events VACUUMed at each size (bench/storage.py's home): 2.66 MB at SQLite's default
# 4 KB, 2.38 MB at 1 KB, 2.47 MB at 512 B (more pages of b-tree).
PAGE_SIZE = 1024


class HomeEventLogStorage(ConsolidatedSqliteEventLogStorage):
    """ConsolidatedSqliteEventLogStorage under the instance's own home unless `base_dir` is given."""

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None) -> None:
        if base_dir is not None:
            super().__init__(base_dir, inst_data)
            return
        # What ConsolidatedSqliteEventLogStorage.__init__ sets, with the folder left for
        # register_instance: DagsterInstance registers its storage before anything reads it.
        self._base_dir = ""
        self._conn_string = ""
        self._secondary_index_cache: dict[str, Any] = {}
        self._inst_data = inst_data
        self._watchers: defaultdict[str, dict[Any, Any]] = defaultdict(dict)
        self._obs = None
        SqlEventLogStorage.__init__(self)  # type: ignore[arg-type]  # Dagster's own generic base

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"base_dir": dg.Field(dg.StringSource, is_required=False)}

    def register_instance(self, instance: Any) -> None:
        if not self._base_dir:
            self._base_dir = os.path.join(instance.root_directory, "history")
            self._conn_string = sqlite_conn_string(self._base_dir, EVENT_LOG_FILE)
            if not os.path.exists(self.get_db_path()):
                self._init_db()
        super().register_instance(instance)

    def _init_db(self) -> None:
        path = self.get_db_path()
        if not os.path.exists(path):
            os.makedirs(self._base_dir, exist_ok=True)
            with contextlib.closing(sqlite3.connect(path)) as conn:  # page size is fixed when the file is made
                conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
                conn.execute("VACUUM")
        super()._init_db()
