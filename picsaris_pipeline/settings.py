"""Configuration from the environment (every variable: README.md, "Configuration"), read once when
a resource, command or run is built, never at import time: `Settings.from_env` is the one reader
and checks every value."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from picsaris_pipeline.errors import ConfigurationError

REALTIME_PUBLISHERS = ("log", "supabase", "pg_notify")

# A batch run (a range of photo partitions: bursts from the sensor, `picsaris process`) holds at
# most this many photos: enough to spread a run's fixed cost, few enough that a batch's verified
# images stay in memory between its steps (~185 MB) and that a crash redoes little. bench/burst.py,
# 16 against 8 back to back: 100 photos drained in 2.58x the bare two-core time instead of 2.98x.
MAX_PHOTOS_PER_BATCH = 16  # PICSARIS_BATCH_SIZE's default

T = TypeVar("T")

# Tuning defaults (README.md, "Configuration").
DEFAULT_LEASE_SECONDS = 60  # PICSARIS_LEASE_SECONDS
# A photo's four steps take about a second; a quarter of an hour without progress means its run
# died or never started (queue stuck, daemon down) and someone should look.
DEFAULT_STUCK_AFTER = timedelta(minutes=15)  # PICSARIS_STUCK_AFTER_MINUTES
# An event's partitions and finished runs leave Dagster this long after it ends (docs/OPERATIONS.md,
# "Archiving an event"): a month for late uploads, re-runs and questions about the event.
DEFAULT_ARCHIVE_AFTER = timedelta(days=30)  # PICSARIS_ARCHIVE_AFTER
DEFAULT_THUMBNAIL_PORT = 3071  # PICSARIS_THUMBNAIL_PORT
DEFAULT_THUMBNAIL_LINK_SECONDS = 3600  # PICSARIS_THUMBNAIL_LINK_SECONDS

PRICE_ENV = {
    "face_engine_call_usd": "PICSARIS_PRICE_ENGINE_CALL_USD",
    "storage_gb_month_usd": "PICSARIS_PRICE_STORAGE_GB_MONTH_USD",
    "realtime_message_usd": "PICSARIS_PRICE_REALTIME_MESSAGE_USD",
}


@dataclass(frozen=True)
class UnitPrices:
    """Unit prices in USD; override each with its environment variable (see PRICE_ENV)."""

    face_engine_call_usd: float = 0.001  # AWS Rekognition: IndexFaces or SearchUsers, per call
    storage_gb_month_usd: float = 0.015  # Cloudflare R2 standard storage
    realtime_message_usd: float = 0.0000025  # Supabase Realtime: $2.50 per million messages

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> UnitPrices:
        """Prices from PICSARIS_PRICE_*; unset or empty keeps the default. Raises ConfigurationError
        for a value that is not a finite, non-negative number."""
        env = os.environ if environ is None else environ
        values: dict[str, float] = {}
        for name_of_field, name in PRICE_ENV.items():
            raw = (env.get(name) or "").strip()
            if not raw:
                continue
            try:
                value = float(raw)
            except ValueError as error:
                raise ConfigurationError(f"{name} must be a price in USD, got {raw!r}") from error
            if not math.isfinite(value) or value < 0:
                raise ConfigurationError(f"{name} must be a finite, non-negative price in USD, got {raw!r}")
            values[name_of_field] = value
        return cls(**values)


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    bucket: str | None  # None: the local directory store under home
    s3_endpoint_url: str | None
    face_engine: str
    face_model: str | None  # None: the engine's default
    match_threshold: float | None  # minimum similarity; None: the engine's default
    dagster_url: str | None
    supabase_url: str | None
    supabase_service_role_key: str | None
    realtime: str  # "log" | "supabase" | "pg_notify"
    aws_region: str | None  # Rekognition's region (AWS_REGION / AWS_DEFAULT_REGION)
    rekognition_endpoint_url: str | None  # None: AWS's public endpoint for the region
    rekognition_collection_prefix: str
    # Rekognition's own keys: on R2, AWS_ACCESS_KEY_ID holds the bucket's R2 token, which AWS refuses.
    # Unset: boto3's default chain (environment, profile, ECS task role / instance profile).
    rekognition_access_key_id: str | None
    rekognition_secret_access_key: str | None
    # Tuning knobs, defaulted so that a Settings built by hand (tests) needs none of them.
    batch_size: int = MAX_PHOTOS_PER_BATCH  # photos per batch run (1: one run per photo)
    workers: int = 1  # worker processes for `picsaris process` / `reembed`; from_env: one per core
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    stuck_after: timedelta = DEFAULT_STUCK_AFTER  # when the no_stuck_photos check calls a photo stuck
    archive_after: timedelta | None = DEFAULT_ARCHIVE_AFTER  # after an event ends; None: never automatically
    prices: UnitPrices = field(default_factory=UnitPrices)  # the event summary's unit prices
    thumbnail_port: int = DEFAULT_THUMBNAIL_PORT  # the local thumbnail route's port
    thumbnail_link_seconds: int = DEFAULT_THUMBNAIL_LINK_SECONDS  # a presigned thumbnail link's lifetime

    @property
    def local_bucket_dir(self) -> Path:
        return self.home / "bucket"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Every setting from `environ` (default: the process environment), checked: raises
        ConfigurationError for a value out of range."""
        env = os.environ if environ is None else environ
        home = Path(env.get("PICSARIS_HOME") or ".picsaris").expanduser().resolve()
        match_threshold = _parsed(env, "PICSARIS_MATCH_THRESHOLD", float, "a number")
        if match_threshold is not None and not 0.0 <= match_threshold < 1.0:
            raise ConfigurationError("PICSARIS_MATCH_THRESHOLD is a similarity between 0 and 1")
        from picsaris_pipeline.faces.registry import DEFAULT_ENGINE, ENGINES  # the engines import Settings

        engine = env.get("PICSARIS_FACE_ENGINE") or DEFAULT_ENGINE
        if engine not in ENGINES:
            raise ConfigurationError(f"PICSARIS_FACE_ENGINE must be {' or '.join(ENGINES)}, got {engine!r}")
        supabase_url = env.get("SUPABASE_URL") or None
        realtime = env.get("PICSARIS_REALTIME") or ("supabase" if supabase_url else "log")
        if realtime not in REALTIME_PUBLISHERS:
            raise ConfigurationError(
                f"PICSARIS_REALTIME must be one of {', '.join(REALTIME_PUBLISHERS)}, got {realtime!r}"
            )
        return cls(
            home=home,
            database_url=env.get("PICSARIS_DATABASE_URL") or f"sqlite:///{home / 'picsaris.db'}",
            bucket=env.get("PICSARIS_BUCKET") or None,
            s3_endpoint_url=env.get("PICSARIS_S3_ENDPOINT_URL") or None,
            face_engine=engine,
            face_model=env.get("PICSARIS_FACE_MODEL") or None,
            match_threshold=match_threshold,
            dagster_url=env.get("PICSARIS_DAGSTER_URL") or None,
            supabase_url=supabase_url,
            supabase_service_role_key=env.get("SUPABASE_SERVICE_ROLE_KEY") or None,
            realtime=realtime,
            aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            rekognition_endpoint_url=env.get("PICSARIS_REKOGNITION_ENDPOINT_URL") or None,
            rekognition_collection_prefix=env.get("PICSARIS_REKOGNITION_COLLECTION_PREFIX") or "picsaris",
            rekognition_access_key_id=env.get("PICSARIS_REKOGNITION_ACCESS_KEY_ID") or None,
            rekognition_secret_access_key=env.get("PICSARIS_REKOGNITION_SECRET_ACCESS_KEY") or None,
            batch_size=whole_number_from_env("PICSARIS_BATCH_SIZE", MAX_PHOTOS_PER_BATCH, maximum=100, environ=env),
            workers=whole_number_from_env("PICSARIS_WORKERS", max(1, os.cpu_count() or 1), environ=env),
            lease_seconds=whole_number_from_env(
                "PICSARIS_LEASE_SECONDS", DEFAULT_LEASE_SECONDS, minimum=2, maximum=3600, environ=env
            ),
            stuck_after=_stuck_after(env),
            archive_after=_archive_after(env),
            prices=UnitPrices.from_env(env),
            thumbnail_port=whole_number_from_env(
                "PICSARIS_THUMBNAIL_PORT", DEFAULT_THUMBNAIL_PORT, maximum=65535, environ=env
            ),
            thumbnail_link_seconds=whole_number_from_env(
                "PICSARIS_THUMBNAIL_LINK_SECONDS", DEFAULT_THUMBNAIL_LINK_SECONDS, environ=env
            ),
        )


def _parsed(env: Mapping[str, str], name: str, convert: Callable[[str], T], kind: str) -> T | None:
    """`name`'s value converted, or None where unset or empty; ConfigurationError where it is not `kind`."""
    raw = env.get(name)
    if not raw:
        return None
    try:
        return convert(raw)
    except ValueError as error:
        raise ConfigurationError(f"{name} must be {kind}, got {raw!r}") from error


def _stuck_after(env: Mapping[str, str]) -> timedelta:
    minutes = _parsed(env, "PICSARIS_STUCK_AFTER_MINUTES", float, "a number")
    if minutes is None:
        return DEFAULT_STUCK_AFTER
    if minutes <= 0:
        raise ConfigurationError("PICSARIS_STUCK_AFTER_MINUTES must be positive")
    return timedelta(minutes=minutes)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def _archive_after(env: Mapping[str, str]) -> timedelta | None:
    """PICSARIS_ARCHIVE_AFTER: a duration such as `30d`, `12h`, `90m` or `45s`; `off` turns the
    automatic archiving off (`picsaris event archive` still works)."""
    raw = (env.get("PICSARIS_ARCHIVE_AFTER") or "").strip().lower()
    if not raw:
        return DEFAULT_ARCHIVE_AFTER
    if raw == "off":
        return None
    match = _DURATION.fullmatch(raw)
    if match is None:
        raise ConfigurationError(f"PICSARIS_ARCHIVE_AFTER must be a duration like 30d, 12h, 90m or off, got {raw!r}")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def whole_number_from_env(
    name: str,
    default: int,
    minimum: int = 1,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """An optional whole-number setting (tuning knobs such as PICSARIS_WORKERS), checked."""
    value = _parsed(os.environ if environ is None else environ, name, int, "a whole number")
    if value is None:
        return default
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigurationError(f"{name} must be {bounds}, got {value}")
    return value
