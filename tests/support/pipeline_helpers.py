"""Test helpers that drive the real pipeline pieces (intake, resources, assets) on temp storage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

import dagster as dg

from picsaris_pipeline.assets import ATTENDEE_ASSETS, PHOTO_ASSETS
from picsaris_pipeline.db.repository import Repository, connect
from picsaris_pipeline.domain.model import Attendee, Event, Photo
from picsaris_pipeline.orchestration.partitions import ATTENDEE_PARTITIONS, PHOTO_PARTITIONS, batch_tags
from picsaris_pipeline.orchestration.resources import (
    DatabaseResource,
    FaceEngineResource,
    ObjectStoreResource,
    RealtimeResource,
)
from picsaris_pipeline.services.intake import register_attendee
from picsaris_pipeline.storage import LocalObjectStore, ObjectStore

from .phone_uploads import UploadOptions, upload_as_a_phone


@dataclass
class Pipeline:
    """A database, a local bucket and a Dagster test instance, wired as the code location wires them."""

    repo: Repository
    store: ObjectStore
    resources: dict[str, dg.ConfigurableResource]
    instance: dg.DagsterInstance

    @classmethod
    def build(cls, root: Path, instance: dg.DagsterInstance, database_url: str | None = None) -> Pipeline:
        url = database_url or f"sqlite:///{root / 'app.db'}"
        resources = {
            "database": DatabaseResource(url=url),
            "object_store": ObjectStoreResource(local_root=str(root / "bucket")),
            "face_engine": FaceEngineResource(engine="dlib"),
            "realtime": RealtimeResource(),
        }
        return cls(connect(url), LocalObjectStore(root / "bucket"), resources, instance)

    def event(self, name: str = "Test event") -> Event:
        return self.repo.create_event(name)

    def attendee(self, event: Event, name: str, selfie: Path, consent: bool = True) -> Attendee:
        return register_attendee(self.repo, self.store, event.id, name, consent, selfie.read_bytes(), selfie.name)

    def signed_up(self, event: Event, *selfies: tuple[str, Path]) -> list[Attendee]:
        """Attendees (name, selfie) signed up with consent, each with their reference built."""
        attendees = [self.attendee(event, name, selfie) for name, selfie in selfies]
        for attendee in attendees:
            assert self.run_attendee(attendee.id).success
        return attendees

    def upload(
        self, event: Event, uploader: Attendee, data: bytes, file_name: str, **options: Unpack[UploadOptions]
    ) -> Photo:
        return upload_as_a_phone(self.repo, self.store, event.id, uploader.id, data, file_name, **options).photo

    def run_photo(self, photo_id: str, assets: list | None = None, **resources: object) -> dg.ExecuteInProcessResult:
        """Materialize the photo's assets (all four unless given), with resources overridden if given."""
        if not self.instance.has_dynamic_partition(PHOTO_PARTITIONS, photo_id):
            self.instance.add_dynamic_partitions(PHOTO_PARTITIONS, [photo_id])
        return dg.materialize(
            assets or PHOTO_ASSETS,
            partition_key=photo_id,
            instance=self.instance,
            resources={**self.resources, **resources},
            raise_on_error=False,
        )

    def run_batch(self, photo_ids: list[str], assets: list | None = None) -> dg.ExecuteInProcessResult:
        """One run over a range of photo partitions, as the sensor and `picsaris process` launch a
        batch: the photos must be added as partitions in this order (a range is insertion order)."""
        missing = [p for p in photo_ids if not self.instance.has_dynamic_partition(PHOTO_PARTITIONS, p)]
        self.instance.add_dynamic_partitions(PHOTO_PARTITIONS, missing)
        return dg.materialize(
            assets or PHOTO_ASSETS,
            instance=self.instance,
            resources=self.resources,
            tags=batch_tags(photo_ids),
            raise_on_error=False,
        )

    def run_attendee(self, attendee_id: str) -> dg.ExecuteInProcessResult:
        if not self.instance.has_dynamic_partition(ATTENDEE_PARTITIONS, attendee_id):
            self.instance.add_dynamic_partitions(ATTENDEE_PARTITIONS, [attendee_id])
        return dg.materialize(
            ATTENDEE_ASSETS, partition_key=attendee_id, instance=self.instance, resources=self.resources
        )


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    (materialization,) = result.asset_materializations_for_node(asset)
    return {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}


def partition_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, dict[str, object]]:
    """Each partition's materialization metadata for `asset` in a (batch) run, by photo id."""
    return {
        m.partition: {key: getattr(value, "value", value) for key, value in m.metadata.items()}
        for m in result.asset_materializations_for_node(asset)
    }


def run_failure_sensor(pipeline: Pipeline, result: dg.ExecuteInProcessResult) -> None:
    """Evaluate photo_failure_sensor on a failed run, as the daemon does."""
    from picsaris_pipeline.sensors import photo_failure_sensor

    context = dg.build_run_status_sensor_context(
        sensor_name="photo_failure_sensor",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=pipeline.instance,
        dagster_run=result.dagster_run,
        resources=pipeline.resources,
    ).for_run_failure()
    photo_failure_sensor(context)
