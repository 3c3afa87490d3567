"""Settings.from_env: every PICSARIS_* tuning value read once, checked, with the documented defaults;
resources take their defaults from one Settings; a match threshold of 0 is a threshold."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from picsaris_pipeline.definitions import code_versions
from picsaris_pipeline.errors import ConfigurationError
from picsaris_pipeline.faces.engine import configured_versions
from picsaris_pipeline.orchestration import runner
from picsaris_pipeline.orchestration.resources import DatabaseResource, FaceEngineResource, ObjectStoreResource
from picsaris_pipeline.services import health, leases, thumbnail_route
from picsaris_pipeline.services.policy_matching import DEFAULT_POLICY, collection_policy_id, policy_for
from picsaris_pipeline.services.summary import UnitPrices as SummaryUnitPrices
from picsaris_pipeline.settings import Settings, UnitPrices


def settings(**env: str) -> Settings:
    return Settings.from_env({"PICSARIS_HOME": "/tmp/picsaris-settings-test", **env})


def test_defaults() -> None:
    found = settings()
    assert found.match_threshold is None
    assert found.batch_size == 16
    assert found.workers == max(1, os.cpu_count() or 1)
    assert found.lease_seconds == 60
    assert found.stuck_after == timedelta(minutes=15)
    assert found.prices == UnitPrices()
    assert found.thumbnail_port == 3071
    assert found.thumbnail_link_seconds == 3600


def test_every_tuning_value_is_read() -> None:
    found = settings(
        PICSARIS_BATCH_SIZE="1",
        PICSARIS_WORKERS="3",
        PICSARIS_LEASE_SECONDS="2",
        PICSARIS_STUCK_AFTER_MINUTES="0.5",
        PICSARIS_PRICE_ENGINE_CALL_USD="0.002",
        PICSARIS_THUMBNAIL_PORT="4123",
        PICSARIS_THUMBNAIL_LINK_SECONDS="120",
        PICSARIS_MATCH_THRESHOLD="0.6",
    )
    assert (found.batch_size, found.workers, found.lease_seconds) == (1, 3, 2)
    assert found.stuck_after == timedelta(seconds=30)
    assert found.prices == UnitPrices(face_engine_call_usd=0.002)
    assert (found.thumbnail_port, found.thumbnail_link_seconds) == (4123, 120)
    assert found.match_threshold == 0.6


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PICSARIS_BATCH_SIZE", "101", "PICSARIS_BATCH_SIZE must be between 1 and 100, got 101"),
        ("PICSARIS_BATCH_SIZE", "many", "PICSARIS_BATCH_SIZE must be a whole number, got 'many'"),
        ("PICSARIS_WORKERS", "0", "PICSARIS_WORKERS must be at least 1, got 0"),
        ("PICSARIS_LEASE_SECONDS", "1", "PICSARIS_LEASE_SECONDS must be between 2 and 3600, got 1"),
        ("PICSARIS_STUCK_AFTER_MINUTES", "soon", "PICSARIS_STUCK_AFTER_MINUTES must be a number, got 'soon'"),
        ("PICSARIS_STUCK_AFTER_MINUTES", "0", "PICSARIS_STUCK_AFTER_MINUTES must be positive"),
        ("PICSARIS_PRICE_REALTIME_MESSAGE_USD", "-1", "PICSARIS_PRICE_REALTIME_MESSAGE_USD must be a finite"),
        ("PICSARIS_THUMBNAIL_PORT", "70000", "PICSARIS_THUMBNAIL_PORT must be between 1 and 65535, got 70000"),
        ("PICSARIS_THUMBNAIL_LINK_SECONDS", "0", "PICSARIS_THUMBNAIL_LINK_SECONDS must be at least 1, got 0"),
        ("PICSARIS_MATCH_THRESHOLD", "high", "PICSARIS_MATCH_THRESHOLD must be a number, got 'high'"),
        ("PICSARIS_MATCH_THRESHOLD", "1", "PICSARIS_MATCH_THRESHOLD is a similarity between 0 and 1"),
        ("PICSARIS_MATCH_THRESHOLD", "-0.1", "PICSARIS_MATCH_THRESHOLD is a similarity between 0 and 1"),
    ],
)
def test_bad_values_are_configuration_errors(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        settings(**{name: value})


def test_summary_prices_are_the_settings_prices() -> None:
    assert SummaryUnitPrices is UnitPrices


def test_the_old_readers_read_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PICSARIS_WORKERS", "5")
    monkeypatch.setenv("PICSARIS_BATCH_SIZE", "7")
    monkeypatch.setenv("PICSARIS_LEASE_SECONDS", "9")
    monkeypatch.setenv("PICSARIS_THUMBNAIL_PORT", "4000")
    assert (runner.default_workers(), runner.default_batch_size(), leases.lease_seconds()) == (5, 7, 9)
    assert thumbnail_route.route_port() == 4000
    assert health.stuck_after({"PICSARIS_STUCK_AFTER_MINUTES": "2"}) == timedelta(minutes=2)


def test_a_resource_reads_the_environment_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PICSARIS_HOME", str(tmp_path))
    store = ObjectStoreResource()
    first = store.settings
    monkeypatch.setenv("PICSARIS_HOME", "/elsewhere")
    assert store.settings is first  # not parsed again on the next call
    assert ObjectStoreResource().settings.home != first.home  # a new resource (a new run) reads it anew


def test_handed_settings_are_used_instead_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PICSARIS_DATABASE_URL", "sqlite:////nowhere/from-env.db")
    handed = settings(PICSARIS_DATABASE_URL="sqlite:////nowhere/handed.db")
    assert DatabaseResource().with_settings(handed).settings.database_url == "sqlite:////nowhere/handed.db"


def test_a_threshold_of_zero_is_settable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings(PICSARIS_MATCH_THRESHOLD="0").match_threshold == 0.0
    assert FaceEngineResource().with_settings(settings(PICSARIS_MATCH_THRESHOLD="0")).threshold() == 0.0
    monkeypatch.setenv("PICSARIS_MATCH_THRESHOLD", "0")
    assert FaceEngineResource().threshold() == 0.0
    # Resource config 0 wins over the environment, as any other configured value does.
    monkeypatch.setenv("PICSARIS_MATCH_THRESHOLD", "0.7")
    assert FaceEngineResource(min_similarity=0.0).threshold() == 0.0


def test_a_threshold_of_zero_reaches_the_policy() -> None:
    threshold = FaceEngineResource().with_settings(settings(PICSARIS_MATCH_THRESHOLD="0")).threshold()
    policy = policy_for(threshold)
    assert policy.min_similarity == 0.0 and policy.id != DEFAULT_POLICY.id
    dlib = code_versions(configured_versions("dlib", None), 0.0)
    assert dlib["matches_published"].endswith(policy.id)
    rekognition = code_versions(configured_versions("rekognition", None), 0.0)
    assert rekognition["matches_published"].endswith(collection_policy_id(0.0))


def test_a_run_reads_a_threshold_of_zero_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    monkeypatch.setenv("PICSARIS_MATCH_THRESHOLD", "0")
    with dg.build_resources({"face_engine": FaceEngineResource()}) as resources:
        assert resources.face_engine.threshold() == 0.0  # what the matching assets hand to match_photo
