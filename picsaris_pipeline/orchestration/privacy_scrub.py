"""`picsaris privacy scrub`: remove the personal data that versions before the "nothing personal in
Dagster" rule (its event log is append-only history: ids, counts, statuses and links only) wrote
into Dagster's own storage.

Those versions put inline previews of faces (base64 JPEGs), matched guests' names, face boxes, file
names, attendee names, the event summary's per-guest table and health-check examples naming people
into materialization, output and asset-check metadata. Dagster keeps them in `event_logs` (on
SQLite the run shards and the index under $DAGSTER_HOME/history/runs of homes made before the
one-file event log, history/event_log.db since; one table on Postgres),
`asset_keys.last_materialization` and `asset_check_executions.evaluation_event`. Each stored event is
rewritten in place with those metadata entries removed (or, for reasons quoting a file name, the
quote cut out); ids, counts and statuses stay. Rows are found with a cheap LIKE pre-filter first, so
a second run over a clean instance reads almost nothing and finds nothing.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import dagster as dg
import sqlalchemy as sa

from picsaris_pipeline.orchestration.dagster_internals import event_log_connections

# Labels whose values were personal in every version that wrote them.
_PERSONAL_LABELS = frozenset({"preview", "matched", "file_name", "boxes", "name", "perceptual_hash"})
# "photo <id> (<file name>)" in old duplicate reasons.
_QUOTED_FILE_NAME = re.compile(r"(photo [0-9A-Za-z]+) \([^)]*\)")
# Old health-check examples: "<id> (<file name>): ..." and "<id> (<name>, event <id>)".
_NAMED_EXAMPLE = re.compile(r"^[0-9A-Za-z]+ \((?!event [0-9A-Za-z]+\)$)")
# The old event summary's per-guest table was headed by names ("| attendee |"), the new by ids.
_OLD_SUMMARY = "| attendee | consent |"
# Candidate rows, in both serializations of metadata: a list of entries with "label" (older
# events) and a mapping from label to value (newer ones).
_LIKE_PATTERNS = [
    "%data:image/%",
    *(
        pattern
        for label in sorted(_PERSONAL_LABELS | {"examples", "summary", "reason"})
        for pattern in (f'%"label": "{label}"%', f'%"{label}": {{"__class__"%')
    ),
]
# (table, key column, serialized event column)
_TABLES = [
    ("event_logs", "id", "event"),
    ("asset_keys", "asset_key", "last_materialization"),
    ("asset_check_executions", "id", "evaluation_event"),
]


def _value_text(entry_data: Any) -> str:
    return json.dumps(entry_data)


def _clean_entry(label: str, value: Any) -> tuple[bool, Any]:
    """(keep, new value) for one metadata entry's serialized value."""
    text = _value_text(value)
    if label in _PERSONAL_LABELS or "data:image/" in text:
        return False, value
    if label == "summary" and _OLD_SUMMARY in text:
        return False, value
    if label == "examples" and isinstance(value, dict):
        examples = value.get("data")
        if isinstance(examples, str):
            try:
                examples = json.loads(examples)
            except ValueError:
                examples = None
        if isinstance(examples, list) and any(isinstance(e, str) and _NAMED_EXAMPLE.match(e) for e in examples):
            return False, value
    if label == "reason" and isinstance(value, dict) and isinstance(value.get("text"), str):
        cleaned = _QUOTED_FILE_NAME.sub(r"\1", value["text"])
        if cleaned != value["text"]:
            return True, {**value, "text": cleaned}
    return True, value


def _scrub_tree(node: Any) -> tuple[Any, int]:
    """The serialized event with personal metadata removed, and how many entries were changed."""
    changed = 0
    if isinstance(node, list):
        out_list = []
        for item in node:
            new, n = _scrub_tree(item)
            out_list.append(new)
            changed += n
        return out_list, changed
    if not isinstance(node, dict):
        return node, 0
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "metadata_entries" and isinstance(value, list):
            # Older serialization: [{"__class__": "EventMetadataEntry", "label": ..., "entry_data": ...}]
            kept = []
            for entry in value:
                if isinstance(entry, dict) and isinstance(entry.get("label"), str):
                    keep, data = _clean_entry(entry["label"], entry.get("entry_data"))
                    if not keep:
                        changed += 1
                        continue
                    if data is not entry.get("entry_data"):
                        changed += 1
                        entry = {**entry, "entry_data": data}
                kept.append(entry)
            out[key] = kept
        elif key == "metadata" and isinstance(value, dict) and "__class__" not in value:
            # Newer serialization: {"label": {"__class__": "TextMetadataValue", ...}}
            kept_map: dict[str, Any] = {}
            for label, data in value.items():
                keep, new_data = _clean_entry(label, data)
                if not keep:
                    changed += 1
                    continue
                if new_data is not data:
                    changed += 1
                kept_map[label] = new_data
            out[key] = kept_map
        else:
            new, n = _scrub_tree(value)
            out[key] = new
            changed += n
    return out, changed


def scrub_serialized(text: str) -> tuple[str, int]:
    """One stored event (Dagster's serdes JSON) without personal metadata, and the entries changed."""
    try:
        tree = json.loads(text)
    except ValueError:
        return text, 0
    new, changed = _scrub_tree(tree)
    return (json.dumps(new) if changed else text), changed


def _scrub_table(conn: Any, table: str, key: str, column: str, dry_run: bool) -> int:
    if not sa.inspect(conn).has_table(table):
        return 0
    like = " or ".join(f"{column} like :p{i}" for i in range(len(_LIKE_PATTERNS)))
    params = {f"p{i}": pattern for i, pattern in enumerate(_LIKE_PATTERNS)}
    rows = conn.execute(sa.text(f"select {key}, {column} from {table} where {like}"), params).all()
    rewritten = 0
    for row_key, text in rows:
        if text is None:
            continue
        new, changed = scrub_serialized(text)
        if not changed:
            continue
        rewritten += 1
        if not dry_run:
            conn.execute(
                sa.text(f"update {table} set {column} = :new where {key} = :key"), {"new": new, "key": row_key}
            )
    return rewritten


def _vacuum(conn: Any) -> None:
    """Rewritten rows leave their old text in the SQLite file's free pages: rebuild the file."""
    raw = conn.connection.dbapi_connection
    raw.commit()
    raw.execute("VACUUM")


def scrub_instance(instance: dg.DagsterInstance, dry_run: bool = False) -> Counter[str]:
    """Rewrite (or with dry_run only count) the stored events holding personal metadata; returns
    the number of rows per table."""
    counts: Counter[str] = Counter({table: 0 for table, _, _ in _TABLES})
    for connection in event_log_connections(instance):
        with connection as conn:
            for table, key, column in _TABLES:
                counts[table] += _scrub_table(conn, table, key, column, dry_run)
            if not dry_run and conn.in_transaction():
                conn.commit()
            if not dry_run and conn.dialect.name == "sqlite" and sum(counts.values()):
                _vacuum(conn)
    if not dry_run:
        instance.run_storage.set_cursor_values({SCRUBBED_KEY: "1"})
    return counts


# Set in Dagster's key-value store once a scrub found or left nothing: this version writes nothing
# personal, so an erasure need not read every run's events again.
SCRUBBED_KEY = "picsaris/privacy_scrubbed"


def scrub_once(instance: dg.DagsterInstance) -> int:
    """Scrub the instance unless a scrub already completed on it; returns the rows rewritten."""
    if instance.run_storage.get_cursor_values({SCRUBBED_KEY}).get(SCRUBBED_KEY):
        return 0
    return sum(scrub_instance(instance).values())
