"""An operator's picture of one event: photos by status, who was found how often, totals, and what
the event costs to run. Built with polars from the application database and the object store.

`summarize_event` reads four small tables of the event (photos, faces, matches under one model
version, attendees) through the repository (`Repository.summary_frames`: SQLAlchemy Core selects
through `pl.read_database`, so it runs unchanged on SQLite and PostgreSQL), and does the arithmetic
in polars. Every frame has an explicit schema: an event with no photos still gives frames with the
right columns and dtypes, and zero totals.

Definitions:

- faces: rows in `faces` of the event's published photos, except those represented (vector or
  engine face id) only under other model versions: a re-embedding under a new Rekognition face
  model detects every face again, and they are not counted twice.
- matches: matches under the given model version only; a model version is never compared with
  another. unmatched_faces: faces of published photos that no match under that version points at
  (one face matches at most one guest, so this is faces minus their matches).
- in_progress: photos that are not terminal yet (pending_upload up to embedded), so published +
  rejected + duplicates + failed + in_progress = photos.
- upload complete -> published, what a guest waits for: from the moment the photo's bytes landed in
  the bucket (its object's last-modified time: the phone says "complete" as soon as its PUT
  returns; created_at, when the upload was requested, if the object is gone) to its first
  publication (the earliest model-version marker, else updated_at), in seconds, so neither the
  phone's upload time nor a later re-embedding stretches it; p50/p95 are 0 while nothing is
  published. Where photos wait for `picsaris process` (the demo), that wait is in it too.
- stored_bytes: the size of every object under `events/{event_id}/` (uploads, selfies, derived).

Costs are what this event is billed, at `UnitPrices`, and beside it what it would cost on AWS
Rekognition (`cost_on_rekognition_usd`):

- face_engine_calls: AWS Rekognition bills each IndexFaces and each SearchUsers call. One
  IndexFaces per verified photo (published, or any photo that has faces stored), one per attendee
  whose selfie was indexed (reference ready or rejected), and one SearchUsers per face of a
  published photo. A local engine (dlib: every model version not named `rekognition-...`) runs on
  our own machine and is billed nothing per call: its unit price and cost are 0, and only the
  Rekognition column prices those calls.
- storage_gb_month: stored_bytes / 1e9 for one month of Cloudflare R2 standard storage.
- realtime_messages: per published photo, one message on the event topic plus one per matched guest
  (Supabase Realtime bills per message).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.db.repository.summary_reads import SUMMARY_ATTENDEE_SCHEMA
from picsaris_pipeline.db.repository.summary_reads import conform_frame as _conform
from picsaris_pipeline.domain.escaping import markdown_text
from picsaris_pipeline.domain.model import TERMINAL_STATUSES, PhotoStatus, ReferenceStatus
from picsaris_pipeline.settings import PRICE_ENV as PRICE_ENV  # the prices are settings, read there
from picsaris_pipeline.settings import UnitPrices
from picsaris_pipeline.storage.base import ObjectStore

BY_STATUS_SCHEMA: dict[str, Any] = {"status": pl.String, "reason": pl.String, "photos": pl.Int64}
PER_ATTENDEE_SCHEMA: dict[str, Any] = {**SUMMARY_ATTENDEE_SCHEMA, "photos_matched": pl.Int64}
TOTALS_SCHEMA: dict[str, Any] = {"metric": pl.String, "value": pl.Float64}
COSTS_SCHEMA: dict[str, Any] = {
    "item": pl.String,
    "quantity": pl.Float64,
    "unit_price_usd": pl.Float64,
    "cost_usd": pl.Float64,
    "cost_on_rekognition_usd": pl.Float64,
}
TOTAL_METRICS = (
    "photos",
    "published",
    "rejected",
    "duplicates",
    "failed",
    "in_progress",
    "faces",
    "faces_per_published_photo",
    "matches",
    "unmatched_faces",
    "attendees",
    "attendees_ready",
    "attendees_without_consent",
    "upload_to_published_p50_s",
    "upload_to_published_p95_s",
    "stored_bytes",
)
# Totals that are not counts, shown with decimals (FRACTION_DIGITS of them).
_FRACTIONAL_METRICS = frozenset({"faces_per_published_photo", "upload_to_published_p50_s", "upload_to_published_p95_s"})
FRACTION_DIGITS = 2
COST_DIGITS = 9  # shown: a realtime message costs $0.0000025
# Kept: finer than shown, so a tiny item (a few KB of storage) keeps its figure, without float noise.
_STORED_COST_DIGITS = 12
# What people read instead of a metric's name where it is not obvious.
METRIC_LABELS = {
    "upload_to_published_p50_s": "upload complete -> published p50 (s)",
    "upload_to_published_p95_s": "upload complete -> published p95 (s)",
}
# Model versions of the engine that bills per call (faces/rekognition.py names them so).
_BILLED_ENGINE_PREFIX = "rekognition-"

_INDEXED_REFERENCES = (ReferenceStatus.READY.value, ReferenceStatus.REJECTED.value)
_IN_PROGRESS = tuple(s.value for s in PhotoStatus if s not in TERMINAL_STATUSES)


@dataclass(frozen=True)
class EventSummary:
    event_id: str
    event_name: str
    model_version: str
    by_status: pl.DataFrame  # status, reason, photos (reason "" where none); by status, then most photos first
    per_attendee: pl.DataFrame  # attendee_id, name, consent, reference_status, photos_matched (every attendee)
    totals: pl.DataFrame  # metric, value (Float64), one row per TOTAL_METRICS entry, in that order
    # item, quantity, unit_price_usd, cost_usd, cost_on_rekognition_usd; face engine, storage, realtime, then total
    costs: pl.DataFrame

    def total(self, metric: str) -> float:
        """One value of `totals` by metric name (KeyError for an unknown metric)."""
        values = self.totals.filter(pl.col("metric") == metric)["value"]
        if values.is_empty():
            raise KeyError(metric)
        return float(values[0])


def summarize_event(
    repo: Repository, store: ObjectStore, event_id: str, model_version: str, prices: UnitPrices | None = None
) -> EventSummary:
    """Summarize one event under one model version. `prices` None reads UnitPrices.from_env().

    Raises NotFoundError for an unknown event (BadInputError for a malformed id).
    """
    event = repo.get_event(event_id)
    prices = UnitPrices.from_env() if prices is None else prices
    frames = repo.summary_frames(event.id, model_version)
    photos, faces, matches, attendees = frames.photos, frames.faces, frames.matches, frames.attendees
    objects = list(store.list(f"events/{event.id}/"))
    stored_bytes = sum(info.size for info in objects)

    published = photos.filter(pl.col("status") == PhotoStatus.PUBLISHED.value)
    published_ids = published["photo_id"].implode()
    published_faces = faces.filter(pl.col("photo_id").is_in(published_ids))
    published_matches = matches.filter(pl.col("photo_id").is_in(published_ids))
    unmatched_faces = published_faces.filter(~pl.col("face_id").is_in(matches["face_id"].implode())).height

    counts = photos.group_by("status").len()
    per_status = dict(zip(counts["status"].to_list(), counts["len"].to_list(), strict=True))
    seconds = _upload_to_published_seconds(published, {info.key: info.last_modified for info in objects})
    n_published = published.height
    totals: dict[str, float] = {
        "photos": photos.height,
        "published": n_published,
        "rejected": per_status.get(PhotoStatus.REJECTED.value, 0),
        "duplicates": per_status.get(PhotoStatus.DUPLICATE.value, 0),
        "failed": per_status.get(PhotoStatus.FAILED.value, 0),
        "in_progress": sum(per_status.get(status, 0) for status in _IN_PROGRESS),
        "faces": published_faces.height,
        "faces_per_published_photo": round(published_faces.height / n_published, FRACTION_DIGITS)
        if n_published
        else 0.0,
        "matches": matches.height,
        "unmatched_faces": unmatched_faces,
        "attendees": attendees.height,
        "attendees_ready": attendees.filter(pl.col("reference_status") == ReferenceStatus.READY.value).height,
        "attendees_without_consent": attendees.filter(~pl.col("consent")).height,
        "upload_to_published_p50_s": _quantile(seconds, 0.5),
        "upload_to_published_p95_s": _quantile(seconds, 0.95),
        "stored_bytes": stored_bytes,
    }

    indexed_photos = photos.filter(
        (pl.col("status") == PhotoStatus.PUBLISHED.value) | pl.col("photo_id").is_in(faces["photo_id"].implode())
    ).height
    indexed_selfies = attendees.filter(pl.col("reference_status").is_in(_INDEXED_REFERENCES)).height
    quantities = {
        "face_engine_calls": float(indexed_photos + indexed_selfies + published_faces.height),
        "storage_gb_month": stored_bytes / 1e9,
        "realtime_messages": float(n_published + published_matches.height),
    }
    return EventSummary(
        event_id=event.id,
        event_name=event.name,
        model_version=model_version,
        by_status=_by_status(photos),
        per_attendee=_per_attendee(attendees, matches),
        totals=pl.DataFrame(
            {"metric": list(TOTAL_METRICS), "value": [float(totals[m]) for m in TOTAL_METRICS]}, schema=TOTALS_SCHEMA
        ),
        costs=_costs(quantities, prices, billed_per_call=model_version.startswith(_BILLED_ENGINE_PREFIX)),
    )


# -- frames -------------------------------------------------------------------------------------
def _upload_to_published_seconds(published: pl.DataFrame, uploaded_at: Mapping[str, datetime]) -> pl.Series:
    """Per published photo, seconds from its bytes landing in the bucket to its first publication."""
    keys = published["object_key"].to_list()
    landed = pl.Series("landed", [uploaded_at.get(key) for key in keys], dtype=published.schema["created_at"])
    return published.with_columns(landed).select(
        # Never below 0: a bucket's clock (or its second-resolution timestamps) may run ahead.
        ((pl.col("updated_at") - pl.coalesce("landed", "created_at")).dt.total_microseconds() / 1e6)
        .clip(lower_bound=0.0)
        .alias("seconds")
    )["seconds"]


def _quantile(values: pl.Series, quantile: float) -> float:
    result = values.quantile(quantile, interpolation="linear")
    return 0.0 if result is None else round(float(result), FRACTION_DIGITS)


def _by_status(photos: pl.DataFrame) -> pl.DataFrame:
    return (
        photos.with_columns(pl.col("reason").fill_null(""))
        .group_by("status", "reason")
        .agg(pl.len().cast(pl.Int64).alias("photos"))
        .sort(["status", "photos", "reason"], descending=[False, True, False])
        .pipe(_conform, BY_STATUS_SCHEMA)
    )


def _per_attendee(attendees: pl.DataFrame, matches: pl.DataFrame) -> pl.DataFrame:
    # One match per (photo, attendee, model version), so rows counted here are photos.
    matched = matches.group_by("attendee_id").agg(pl.col("photo_id").n_unique().cast(pl.Int64).alias("photos_matched"))
    return (
        attendees.join(matched, on="attendee_id", how="left", maintain_order="left")
        .with_columns(pl.col("photos_matched").fill_null(0))
        .pipe(_conform, PER_ATTENDEE_SCHEMA)
    )


def _costs(quantities: Mapping[str, float], prices: UnitPrices, billed_per_call: bool) -> pl.DataFrame:
    on_rekognition = {
        "face_engine_calls": prices.face_engine_call_usd,
        "storage_gb_month": prices.storage_gb_month_usd,
        "realtime_messages": prices.realtime_message_usd,
    }
    # A local engine's calls are billed nothing; the Rekognition column still prices them.
    unit = {**on_rekognition, "face_engine_calls": on_rekognition["face_engine_calls"] if billed_per_call else 0.0}
    items = pl.DataFrame(
        {
            "item": list(unit),
            "quantity": [quantities[i] for i in unit],
            "unit_price_usd": list(unit.values()),
            "rekognition_unit_usd": list(on_rekognition.values()),
        },
    ).select(
        "item",
        "quantity",
        "unit_price_usd",
        (pl.col("quantity") * pl.col("unit_price_usd")).alias("cost_usd"),
        (pl.col("quantity") * pl.col("rekognition_unit_usd")).alias("cost_on_rekognition_usd"),
    )
    total = pl.DataFrame(
        {
            "item": ["total"],
            "quantity": [None],
            "unit_price_usd": [None],
            "cost_usd": [items["cost_usd"].sum()],
            "cost_on_rekognition_usd": [items["cost_on_rekognition_usd"].sum()],
        },
        schema=COSTS_SCHEMA,
    )
    money = [pl.col(column).round(_STORED_COST_DIGITS) for column in ("cost_usd", "cost_on_rekognition_usd")]
    # Rounded where they are made: the event summary's metadata shows no float noise.
    return _conform(pl.concat([items, total], how="vertical").with_columns(money), COSTS_SCHEMA)


# -- markdown -----------------------------------------------------------------------------------
def summary_markdown(summary: EventSummary) -> str:
    """Markdown tables for the Dagster UI: totals, photos by status and reason, matches per attendee
    (by id: no guest's name goes to Dagster), costs. Reasons and the event's name are escaped so
    they cannot break a table."""
    totals = [[METRIC_LABELS.get(metric, metric), value] for metric, value in totals_cells(summary)]
    statuses = [[s, _text(r) or "–", str(n)] for s, r, n in summary.by_status.iter_rows()]
    # Attendee ids, not names: this markdown is kept in Dagster's event log, which is never erased.
    attendees = [
        [attendee_id, "yes" if consent else "no", reference, str(matched)]
        for attendee_id, _, consent, reference, matched in summary.per_attendee.iter_rows()
    ]
    costs = cost_cells(summary)
    parts = [
        f"# {_text(summary.event_name)}",
        f"Event {summary.event_id} · face model {_text(summary.model_version)}",
        "## Totals",
        _table(["metric", "value"], totals),
        "## Photos by status and reason",
        _table(["status", "reason", "photos"], statuses),
        "## Matches per attendee",
        _table(["attendee id", "consent", "reference", "photos matched"], attendees),
        "## Costs (USD)",
        _table(["item", "quantity", "unit price (USD)", "cost (USD)", "cost on Rekognition (USD)"], costs),
        "A local face engine (dlib) is billed nothing per call; the last column is what this event "
        "would cost on AWS Rekognition.",
    ]
    return "\n\n".join(parts) + "\n"


def cost_cells(summary: EventSummary) -> list[list[str]]:
    """The costs as people read them, one row of COSTS_SCHEMA's columns each (the total's quantity
    and unit price empty): the markdown's, the report's CSV and its page."""
    return [
        [item, *("" if number is None else _decimal(number) for number in numbers)]
        for item, *numbers in summary.costs.iter_rows()
    ]


def totals_cells(summary: EventSummary) -> list[list[str]]:
    """The totals as people read them: metric, value (counts whole, the rest rounded)."""
    return [[metric, format_total(metric, value)] for metric, value in summary.totals.iter_rows()]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    if not rows:
        rows = [["(none)"] + [""] * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _text(value: object) -> str:
    """Text a guest typed, shown literally: one line, no HTML, no markdown syntax, no table breaks."""
    return markdown_text(value)


def format_total(metric: str, value: float) -> str:
    """A total as people read it: counts as whole numbers, the rest with FRACTION_DIGITS decimals."""
    return f"{value:.{FRACTION_DIGITS}f}" if metric in _FRACTIONAL_METRICS else f"{value:.0f}"


def _decimal(value: float) -> str:
    """Up to 9 decimals (a realtime message costs $0.0000025), without trailing zeros."""
    text = f"{value:.{COST_DIGITS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
