"""The code location loads, validates with the real `dagster` CLI, and its instance config works."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from picsaris_pipeline.definitions import defs
from tests.support.environment import REPO_ROOT

BIN = Path(sys.executable).parent


def test_definitions_load_with_every_asset_job_and_sensor():
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {
        "verified_upload",
        "faces_detected",
        "embeddings_stored",
        "matches_published",
        "attendee_reference",
        "attendee_matches",
        "event_summary",
    }
    assert {job.name for job in defs.resolve_all_job_defs()} >= {
        "process_photo",
        "process_attendee",
        "summarize_event",
        "ops_health_checks",
    }
    assert defs.resolve_sensor_def("bucket_sensor") is not None
    assert defs.resolve_sensor_def("photo_failure_sensor") is not None
    assert defs.resolve_sensor_def("realtime_outbox_sensor") is not None
    assert defs.resolve_sensor_def("event_archive_sensor").default_status.value == "RUNNING"
    assert {check.name for check in defs.resolve_asset_graph().asset_check_keys} == {
        "no_matches_without_consent",
        "no_stuck_photos",
        "references_complete",
        "realtime_outbox_backlog",
        "no_version_mixing",
        "active_version_complete",
        "vectors_well_formed",
        "no_face_data_without_consent",
        "upload_accepted",  # the per-photo outcome checks (assets/outcomes.py)
        "not_a_duplicate",
    }


def test_every_asset_has_a_description_group_and_kinds():
    for spec in defs.resolve_all_asset_specs():
        assert spec.description, spec.key
        assert spec.group_name in ("photos", "attendees", "events"), spec.key
        assert spec.kinds, spec.key


def test_importing_the_definitions_reads_no_environment_and_loading_them_reads_it_clearly(monkeypatch):
    # Configuration is read when Dagster loads the code location (defs) or a resource is used, never
    # at import (STYLE: avoid #3); a bad value is a clear error naming the variable.
    import importlib

    import picsaris_pipeline.definitions as module
    from picsaris_pipeline.errors import ConfigurationError

    monkeypatch.setenv("PICSARIS_FACE_ENGINE", "not-an-engine")
    reloaded = importlib.reload(module)
    with pytest.raises(ConfigurationError, match="PICSARIS_FACE_ENGINE"):
        _ = reloaded.defs


def test_dagster_cli_validates_the_workspace(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["dagster.yaml", "workspace.yaml", "deploy/dagster.yaml"])
def test_config_files_are_where_the_readme_says(name):
    assert (REPO_ROOT / name).is_file()
