"""Bursts through intake: a guest's photo sent while another of theirs waits is queued for the batch
sensor, which requests range runs; lone photos keep their own runs (the latency path)."""

import dagster as dg
import pytest

from picsaris_pipeline.assets import PHOTO_ASSETS
from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.orchestration.partitions import (
    BATCH_TAG,
    PHOTO_PARTITIONS,
    PHOTO_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
)
from picsaris_pipeline.sensors import upload_batch_sensor

NAMES = ["obama_2.jpg", "obama_4.jpg", "biden_1.jpg", "noface_dog.jpg", "group_two_people.jpg"]


@pytest.fixture
def guests(pipeline, event):
    return [pipeline.repo.add_attendee(event.id, name, True, None, None) for name in ("Flooder", "Lone")]


class Intake:
    """What the upload API does on "upload complete": launch a run, or announce a deferred photo."""

    def __init__(self, pipeline):
        self.pipeline, self.launched, self.announced = pipeline, [], []

    def launch(self, photo):
        self.launched.append(photo.id)

    def announce(self, photo):
        self.announced.append(photo.id)
        self.pipeline.instance.add_dynamic_partitions(PHOTO_PARTITIONS, [photo.id])

    def upload(self, event, guest, path, name=None):
        data = path.read_bytes()
        return self.pipeline.upload(
            event, guest, data, name or path.name, on_uploaded=self.launch, on_deferred=self.announce
        )


def _tick(pipeline):
    context = dg.build_sensor_context(instance=pipeline.instance, resources=pipeline.resources)
    return upload_batch_sensor(context)


def test_a_guests_photos_sent_while_one_waits_are_queued_and_others_guests_are_not(
    pipeline, event, guests, shared_photos
):
    flooder, lone = guests
    intake = Intake(pipeline)
    flood = [intake.upload(event, flooder, shared_photos[n].path) for n in NAMES[:4]]
    single = intake.upload(event, lone, shared_photos[NAMES[4]].path)
    # The first photo launched its own run; the rest waited behind it: queued, partitions added.
    assert intake.launched == [flood[0].id, single.id]
    assert intake.announced == [p.id for p in flood[1:]]
    assert all(pipeline.repo.get_photo(p.id).status is PhotoStatus.UPLOADED for p in flood)


def test_without_a_deferral_callback_every_photo_launches_its_own_run(pipeline, event, guests, shared_photos):
    launched = []
    for name in NAMES[:3]:
        data = shared_photos[name].path.read_bytes()
        pipeline.upload(event, guests[0], data, name, on_uploaded=lambda p: launched.append(p.id))
    assert len(launched) == 3


def test_the_batch_sensor_requests_one_range_run_for_the_queue_and_the_run_publishes_each(
    pipeline, event, guests, shared_photos
):
    intake = Intake(pipeline)
    flood = [intake.upload(event, guests[0], shared_photos[n].path) for n in NAMES]
    queued = flood[1:]

    result = _tick(pipeline)

    (request,) = result.run_requests
    assert request.tags[RANGE_START_TAG] == queued[0].id and request.tags[RANGE_END_TAG] == queued[-1].id
    assert request.tags[BATCH_TAG] == "4" and PHOTO_TAG not in request.tags
    assert request.run_key == f"batch:{queued[0].id}:{queued[-1].id}"
    # Taken off the queue: the next tick requests nothing.
    assert _tick(pipeline).run_requests == []
    run = dg.materialize(PHOTO_ASSETS, instance=pipeline.instance, resources=pipeline.resources, tags=request.tags)
    assert run.success
    assert [pipeline.repo.get_photo(p.id).status for p in queued] == [PhotoStatus.PUBLISHED] * 4
    # The first photo was not in the batch: it has its own run.
    assert pipeline.repo.get_photo(flood[0].id).status is PhotoStatus.UPLOADED


def test_queued_photos_split_where_another_photos_partition_lies_between(pipeline, event, guests, shared_photos):
    flooder, lone = guests
    intake = Intake(pipeline)
    first, second = (intake.upload(event, flooder, shared_photos[n].path) for n in NAMES[:2])
    between = intake.upload(event, lone, shared_photos[NAMES[2]].path)  # its own run, launched
    pipeline.instance.add_dynamic_partitions(PHOTO_PARTITIONS, [between.id])
    third = intake.upload(event, flooder, shared_photos[NAMES[3]].path)
    fourth = intake.upload(event, flooder, shared_photos[NAMES[4]].path)
    assert intake.announced == [second.id, third.id, fourth.id]

    requests = _tick(pipeline).run_requests

    # A range covers every partition between its ends, so it never spans the other guest's photo.
    assert [(r.partition_key, r.tags.get(RANGE_START_TAG), r.tags.get(RANGE_END_TAG)) for r in requests] == [
        (second.id, None, None),
        (None, third.id, fourth.id),
    ]
    single = requests[0]
    assert single.tags[PHOTO_TAG] == second.id and single.run_key == f"photo:{second.id}"
    assert first.id not in {r.partition_key for r in requests}


def test_a_queued_photo_run_meanwhile_by_someone_else_is_dropped_from_the_queue(pipeline, event, guests, shared_photos):
    intake = Intake(pipeline)
    photos = [intake.upload(event, guests[0], shared_photos[n].path) for n in NAMES[:3]]
    assert pipeline.run_photo(photos[1].id).success  # e.g. `picsaris process`, or an operator's re-run
    (request,) = _tick(pipeline).run_requests
    assert request.partition_key == photos[2].id


def test_the_queue_is_taken_once_even_by_two_sensors_at_once(pipeline, event, guests, shared_photos):
    intake = Intake(pipeline)
    photos = [intake.upload(event, guests[0], shared_photos[n].path) for n in NAMES[:4]]
    first = pipeline.repo.take_batch_queue(2)
    second = pipeline.repo.take_batch_queue(10)
    assert [p.id for p in first] == [p.id for p in photos[1:3]]
    assert [p.id for p in second] == [photos[3].id]
    assert pipeline.repo.take_batch_queue(10) == []
