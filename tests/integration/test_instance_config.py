"""The production `deploy/dagster.yaml`: valid as Dagster loads it, on a fresh Postgres database, with the
run queue, pool and retry settings the README promises; and its commented scale-out example really
is a valid `EcsRunLauncher` configuration once uncommented (checked offline, nothing calls AWS).

Dagster has no public validator for instance configuration, so these tests use the functions the
instance itself calls (`dagster._core.instance.config.dagster_instance_config` for the whole file,
`dagster._config.process_config` for a configurable class, as `ConfigurableClassData.rehydrate`
does). Building an `EcsRunLauncher` would call ECS, so the example is validated, never built.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import dagster as dg
import pytest
import yaml
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import PoolGranularity, dagster_instance_config
from dagster_aws.ecs import EcsRunLauncher
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from picsaris_pipeline.orchestration.partition_snapshot import one_read_per_run
from tests.support.dagster_processes import dagster_postgres_url, production_dagster_home
from tests.support.environment import REPO_ROOT, fresh_database

PRODUCTION_YAML = REPO_ROOT / "deploy" / "dagster.yaml"
BEGIN, END = "# >>> example: EcsRunLauncher", "# <<< example: EcsRunLauncher"


def uncomment_ecs_example(text: str) -> str:
    """dagster.yaml with the example block uncommented in place, as an operator would do it."""
    lines = text.splitlines()
    start, stop = lines.index(BEGIN), lines.index(END)
    assert start < stop, "the example's markers are out of order"
    block = lines[start + 1 : stop]
    assert block, "the example block is empty"
    uncommented = []
    for number, line in enumerate(block, start=start + 2):
        assert line == "#" or line.startswith("# "), f"deploy/dagster.yaml:{number} is not a commented line: {line!r}"
        uncommented.append(line[2:])
    # ... after deleting the active run_launcher block (the warm launcher), as its comment says.
    head = lines[:start]
    launcher = head.index("run_launcher:")
    end = next(i for i in range(launcher, len(head)) if not head[i].strip())
    head = head[:launcher] + head[end:]
    return "\n".join([*head, *uncommented, *lines[stop + 1 :]]) + "\n"


def instance_config(directory: Path) -> dict[str, Any]:
    """The instance config exactly as `DagsterInstance` validates it (raises on any schema error)."""
    from picsaris_pipeline.orchestration.partition_snapshot import PicsarisInstance

    config, custom_class = dagster_instance_config(str(directory))
    assert custom_class is PicsarisInstance  # one read of a partition set per run
    return dict(config)


def launcher_config(config: dict[str, Any]) -> dict[str, Any]:
    """The run launcher's own config, processed against EcsRunLauncher's schema (defaults filled)."""
    launcher = config["run_launcher"]
    module = importlib.import_module(launcher["module"])
    assert getattr(module, launcher["class"]) is EcsRunLauncher
    result = process_config(EcsRunLauncher.config_type(), launcher["config"])
    if not result.success:
        raise DagsterInvalidConfigError("EcsRunLauncher config", result.errors, launcher["config"])
    assert result.value is not None
    return dict(result.value)


def validate_run_task_kwargs(run_task_kwargs: dict[str, Any]) -> None:
    """Dagster's schema lets any key through `run_task_kwargs`; the launcher later passes them to ECS
    RunTask. Check them against botocore's bundled ECS model (offline) as the request would be."""
    shape = botocore.session.get_session().get_service_model("ecs").operation_model("RunTask").input_shape
    validate_parameters({**run_task_kwargs, "taskDefinition": "picsaris-run"}, shape)


@pytest.fixture
def ecs_example_home(tmp_path: Path) -> Path:
    home = tmp_path / "ecs"
    home.mkdir()
    (home / "dagster.yaml").write_text(uncomment_ecs_example(PRODUCTION_YAML.read_text()))
    return home


@pytest.fixture
def production_instance(postgres_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The repository's deploy/dagster.yaml as the instance, on a database of its own."""
    with fresh_database(postgres_server, "picsaris_dagster") as url:
        monkeypatch.setenv("DAGSTER_POSTGRES_URL", dagster_postgres_url(url))
        with dg.DagsterInstance.from_config(str(production_dagster_home(tmp_path / "home"))) as instance:
            yield instance


def test_production_yaml_validates_against_dagsters_instance_schema():
    config = instance_config(PRODUCTION_YAML.parent)
    assert config["storage"] == {"postgres": {"postgres_url": {"env": "DAGSTER_POSTGRES_URL"}}}
    # Runs fork from the warm worker; the ECS example stays commented out.
    assert config["run_launcher"] == {
        "module": "picsaris_pipeline.warm_runs.launcher",
        "class": "WarmRunLauncher",
        "config": {"warm": True},
    }


def test_production_instance_forks_runs_from_the_warm_worker(production_instance):
    from picsaris_pipeline.warm_runs.launcher import WarmRunLauncher

    launcher = production_instance.run_launcher
    assert isinstance(launcher, WarmRunLauncher)
    assert launcher.supports_check_run_worker_health


def test_production_instance_keeps_runs_events_and_schedules_in_postgres(production_instance):
    assert isinstance(production_instance.run_storage, PostgresRunStorage)
    assert isinstance(production_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(production_instance.schedule_storage, PostgresScheduleStorage)
    production_instance.add_dynamic_partitions("photos", ["01K000000000000000000000AA"])
    assert production_instance.get_dynamic_partitions("photos") == ["01K000000000000000000000AA"]
    with one_read_per_run():  # the warm worker's runs: one read of the set, from Postgres
        assert list(production_instance.get_dynamic_partitions("photos")) == ["01K000000000000000000000AA"]


def test_runs_queue_with_at_most_four_at_once_one_per_uploader_and_two_batches(production_instance):
    assert isinstance(production_instance.run_coordinator, dg.QueuedRunCoordinator)
    queue = production_instance.get_concurrency_config().run_queue_config
    assert queue.max_concurrent_runs == 4
    assert queue.tag_concurrency_limits == [
        {"key": "picsaris/uploader", "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
        {"key": "picsaris/batch", "limit": 2},
    ]
    # Looked at every second, not Dagster's default five (bench/latency.py: p50 6.6 s -> 3.1 s).
    assert production_instance.run_coordinator.dequeue_interval_seconds == 1


def test_face_engine_pool_is_limited_to_two_steps_across_runs(production_instance):
    pools = production_instance.get_concurrency_config().pool_config
    assert pools.default_pool_limit == 2
    assert pools.pool_granularity is PoolGranularity.OP
    storage = production_instance.event_log_storage
    assert storage.supports_global_concurrency_limits
    # What a run does the first time one of its steps claims a slot in a pool without a limit.
    storage.initialize_concurrency_limit_to_default("face_engine")
    assert storage.get_concurrency_info("face_engine").slot_count == 2


def test_face_engine_is_the_only_pool_so_the_default_limit_is_its_limit():
    # deploy/dagster.yaml can only set a default for every pool; a second pool would get the same limit.
    from picsaris_pipeline.definitions import defs

    pools = {pool for job in defs.resolve_all_job_defs() for node in job.all_node_defs for pool in node.pools}
    assert pools == {"face_engine"}


def test_only_crashed_runs_are_retried(production_instance):
    assert production_instance.run_retries_enabled
    assert production_instance.run_retries_max_retries == 2
    assert production_instance.run_retries_retry_on_asset_or_op_failure is False


def test_ecs_example_uncommented_is_a_valid_instance_with_an_ecs_run_launcher(ecs_example_home):
    config = instance_config(ecs_example_home)
    assert config["run_launcher"]["module"] == "dagster_aws.ecs"
    assert config["run_monitoring"]["enabled"] is True
    # A lost task must fail its run (for run_retries) rather than be resumed.
    assert config["run_monitoring"]["max_resume_run_attempts"] == 0
    # The rest of the production file is untouched by uncommenting the example.
    assert {key: value for key, value in config.items() if key not in ("run_launcher", "run_monitoring")} == {
        key: value
        for key, value in instance_config(PRODUCTION_YAML.parent).items()
        if key not in ("run_launcher", "run_monitoring")
    }

    launcher = launcher_config(config)
    assert launcher["task_definition"] == {"env": "PICSARIS_ECS_RUN_TASK_DEFINITION"}
    assert launcher["container_name"] == "run"
    assert launcher["use_current_ecs_task_config"] is True
    assert launcher["include_sidecars"] is False
    assert launcher["secrets_tag"] is None
    assert {secret["name"] for secret in launcher["secrets"]} >= {"DAGSTER_POSTGRES_URL", "PICSARIS_DATABASE_URL"}
    assert launcher["run_resources"] == {"cpu": "1024", "memory": "4096"}
    validate_run_task_kwargs(launcher["run_task_kwargs"])


def test_no_secret_is_passed_as_plain_configuration(ecs_example_home):
    launcher = launcher_config(instance_config(ecs_example_home))
    secret_names = {secret["name"] for secret in launcher["secrets"]}
    plain = {entry.split("=", 1)[0] for entry in launcher["env_vars"]}
    assert not plain & secret_names
    assert not {name for name in plain if re.search(r"KEY|SECRET|PASSWORD|_URL$", name)} - {
        "PICSARIS_S3_ENDPOINT_URL",
        "SUPABASE_URL",
    }
    assert not any("=" in entry for entry in launcher["env_vars"])  # values come from the environment


@pytest.mark.parametrize(
    ("path", "wrong"),
    [
        (["include_sidecars"], "include_sidecar"),  # a misspelled key of the launcher
        (["container_name"], "container"),
        (["secrets", 0, "valueFrom"], "value_from"),  # inside a secret
        (["propagate_tags", "allow_list"], "allowlist"),
    ],
)
def test_ecs_launcher_schema_refuses_a_misspelled_key(ecs_example_home, path, wrong):
    launcher = yaml.safe_load((ecs_example_home / "dagster.yaml").read_text())["run_launcher"]
    parent = launcher["config"]
    for step in path[:-1]:
        parent = parent[step]
    parent[wrong] = parent.pop(path[-1])
    result = process_config(EcsRunLauncher.config_type(), launcher["config"])
    assert not result.success
    assert wrong in " ".join(error.message for error in result.errors or [])


def test_ecs_launcher_schema_refuses_a_wrong_type():
    result = process_config(EcsRunLauncher.config_type(), {"include_sidecars": "no"})
    assert not result.success


def test_instance_schema_refuses_a_misspelled_section(ecs_example_home):
    config_file = ecs_example_home / "dagster.yaml"
    config_file.write_text(config_file.read_text().replace("run_monitoring:", "run_monitorng:"))
    with pytest.raises(DagsterInvalidConfigError, match="run_monitorng"):
        instance_config(ecs_example_home)


def test_run_task_kwargs_check_refuses_what_ecs_would(ecs_example_home):
    kwargs = launcher_config(instance_config(ecs_example_home))["run_task_kwargs"]
    with pytest.raises(ParamValidationError, match="capacityProviderStrategies"):
        validate_run_task_kwargs({"capacityProviderStrategies": kwargs["capacityProviderStrategy"]})
    with pytest.raises(ParamValidationError, match="capacity_provider"):
        validate_run_task_kwargs({"capacityProviderStrategy": [{"capacity_provider": "FARGATE_SPOT"}]})


def test_uncommenting_refuses_a_stray_uncommented_line():
    text = PRODUCTION_YAML.read_text().replace("#     container_name: run", "    container_name: run")
    with pytest.raises(AssertionError, match="not a commented line"):
        uncomment_ecs_example(text)
