"""Unknown-face clusters: the pure clustering (domain/clustering.py), and on real faces from ../shared/faces
through the pipeline: clusters form at publish time, are pure, show in the event summary, the report
and `picsaris clusters`, a late joiner claims theirs, and a withdrawn or erased guest's faces leave
them."""

from __future__ import annotations

import csv
import json

import dagster as dg
import numpy as np
import pytest
import sqlalchemy as sa

from picsaris_pipeline.assets.events import event_summary
from picsaris_pipeline.cli.report import write_report
from picsaris_pipeline.db import schema as t
from picsaris_pipeline.domain import clustering
from picsaris_pipeline.orchestration.erasure import delete_attendee
from picsaris_pipeline.orchestration.partitions import EVENT_PARTITIONS
from picsaris_pipeline.services.consent import withdraw_consent
from picsaris_pipeline.services.face_clusters import recluster_event, unknown_people
from tests.support.db_helpers import fetch_rows, url_shown
from tests.support.pipeline_helpers import metadata
from tests.support.publishers import RecordingPublisher

# -- pure ---------------------------------------------------------------------------------------


def _people(rng: np.random.Generator, centres: int, per_person: int, spread: float) -> tuple[np.ndarray, list[int]]:
    """Points around far-apart centres (distance ~1.4 between centres, ~spread*sqrt(2) within)."""
    dimension = 128
    vectors, truth = [], []
    for person in range(centres):
        centre = np.zeros(dimension)
        centre[person] = 1.0
        for _ in range(per_person):
            vectors.append(centre + rng.normal(0, spread / np.sqrt(dimension), dimension))
            truth.append(person)
    return np.array(vectors, dtype=np.float32), truth


def test_cluster_groups_each_person_and_keeps_people_apart():
    vectors, truth = _people(np.random.default_rng(1), centres=4, per_person=5, spread=0.2)
    labels = clustering.cluster(vectors, 0.45)
    assert len(set(labels.tolist())) == 4
    assert clustering.purity(list(labels), truth) == 1.0
    assert clustering.completeness(list(labels), truth) == 1.0
    assert clustering.cluster(vectors[:0]).size == 0


def test_a_strict_threshold_splits_rather_than_merges():
    vectors, truth = _people(np.random.default_rng(2), centres=3, per_person=4, spread=0.2)
    labels = clustering.cluster(vectors, 0.01)  # tighter than any two faces
    assert len(set(labels.tolist())) == len(vectors)
    assert clustering.purity(list(labels), truth) == 1.0
    assert clustering.completeness(list(labels), truth) < 1.0


def test_average_linkage_does_not_chain_through_a_bridge():
    # a - bridge - b on a line: single linkage at 0.6 would chain all three; the mean distance of
    # the far end to the pair is over the threshold, so average linkage keeps it out.
    a, bridge, b = np.zeros(3), np.array([0.55, 0, 0]), np.array([1.1, 0, 0])
    labels = clustering.cluster(np.array([a, bridge, b], dtype=np.float32), 0.6)
    assert len(set(labels.tolist())) == 2


def test_place_joins_the_nearest_cluster_within_the_threshold_only():
    vectors, truth = _people(np.random.default_rng(3), centres=2, per_person=4, spread=0.2)
    names = [f"c{p}" for p in truth]
    newcomer, _ = _people(np.random.default_rng(4), centres=2, per_person=1, spread=0.2)
    assert clustering.place(newcomer[1], vectors, names, 0.45) == "c1"
    stranger = np.zeros(128, dtype=np.float32)
    stranger[50] = 1.0
    assert clustering.place(stranger, vectors, names, 0.45) is None
    assert clustering.place(stranger, vectors[:0], [], 0.45) is None


def test_claimable_takes_the_clusters_whose_mean_passes_the_matching_threshold():
    vectors, truth = _people(np.random.default_rng(5), centres=3, per_person=3, spread=0.2)
    names = [f"c{p}" for p in truth]
    selfie, _ = _people(np.random.default_rng(6), centres=1, per_person=1, spread=0.2)
    assert clustering.claimable(selfie[0], vectors, names, 0.45) == ["c0"]
    assert clustering.claimable(selfie[0], vectors, names, 0.999) == []


def test_one_close_face_claims_a_cluster_under_any_but_not_under_mean():
    selfie = np.zeros(3, dtype=np.float32)
    # One face 0.5 from the selfie (passes 0.45 similarity), its cluster mates ~0.9 away.
    members = np.array([[0.5, 0, 0], [0.9, 0.1, 0], [0.9, -0.1, 0]], dtype=np.float32)
    assert clustering.claimable(selfie, members, ["c"] * 3, 0.45, rule="any") == ["c"]
    assert clustering.claimable(selfie, members, ["c"] * 3, 0.45, rule="mean") == []


def test_stable_labels_keep_the_old_ids_of_surviving_clusters():
    new = np.array([0, 0, 0, 1, 1, 2])
    old = ["x", "x", None, "y", "x", None]
    assert clustering.stable_labels(new, old, ["f1", "f2", "f3"]) == ["x", "x", "x", "y", "y", "f1"]


def test_purity_and_completeness_count_majorities():
    assert clustering.purity(["a", "a", "b"], ["x", "y", "y"]) == 2 / 3
    assert clustering.completeness(["a", "a", "b"], ["x", "y", "y"]) == 2 / 3


# -- pipeline, real faces -----------------------------------------------------------------------
OBAMA = ("obama_1.jpg", "obama_2.jpg", "obama_4.jpg")
KIT = ("kit_harington_1.jpg", "kit_harington_2.jpg", "kit_harington_3.jpg")
ALEX = ("alex_lacamoire_1.png", "alex_lacamoire_2.jpg", "alex_lacamoire_3.jpg")


def _event_of_strangers(pipeline, event, shared_photos):
    """A photographer (no consent, so never matched) uploads three photos each of three people
    nobody signed up as; returns {file name: photo id}."""
    photographer = pipeline.attendee(event, "Photographer", shared_photos["tom_cruise_1.jpg"].path, consent=False)
    assert pipeline.run_attendee(photographer.id).success
    photos = {}
    for name in OBAMA + KIT + ALEX:
        photo = pipeline.upload(event, photographer, shared_photos[name].path.read_bytes(), name)
        assert pipeline.run_photo(photo.id).success
        photos[name] = photo.id
    return photos


def _version(pipeline):
    return pipeline.resources["face_engine"].get().model_version


def _cluster_of(pipeline, photo_ids):
    """The cluster id (or None) per photo's unclaimed cluster row."""
    fc = t.face_clusters
    rows = fetch_rows(pipeline.repo, sa.select(fc.c.photo_id, fc.c.cluster_id, fc.c.state))
    by_photo = {r.photo_id: (r.cluster_id, r.state) for r in rows}
    return [by_photo.get(p) for p in photo_ids]


def _person_of(shared_photos, photo_ids_by_name):
    return {photo_id: shared_photos[name].person for name, photo_id in photo_ids_by_name.items()}


def test_publishing_places_strangers_faces_into_pure_clusters(pipeline, event, shared_photos):
    photos = _event_of_strangers(pipeline, event, shared_photos)
    version = _version(pipeline)
    person_of = _person_of(shared_photos, photos)
    # Pure: every cluster, of any size, holds one person's faces only.
    every = unknown_people(pipeline.repo, event.id, version, min_photos=1)
    assert all(len({person_of[p] for p in person.photo_ids}) == 1 for person in every)
    assert sum(person.faces for person in every) == len(photos)
    # Obama's and Kit Harington's three photos each form one cluster, placed one photo at a time.
    # (Alex Lacamoire's three photos are further apart than the strict threshold allows: split.)
    listed = unknown_people(pipeline.repo, event.id, version, min_photos=3)
    groups = sorted(sorted(photos_ids) for photos_ids in (person.photo_ids for person in listed))
    assert sorted(photos[n] for n in OBAMA) in groups and sorted(photos[n] for n in KIT) in groups
    # A full recluster finds the same groups and keeps their ids.
    before = {person.cluster_id for person in listed}
    recluster_event(pipeline.repo, event.id, version)
    assert {p.cluster_id for p in unknown_people(pipeline.repo, event.id, version)} == before


def test_event_summary_report_and_cli_show_counts_only(pipeline, event, shared_photos, tmp_path, monkeypatch):
    _event_of_strangers(pipeline, event, shared_photos)
    pipeline.instance.add_dynamic_partitions(EVENT_PARTITIONS, [event.id])
    result = dg.materialize(
        [event_summary], partition_key=event.id, instance=pipeline.instance, resources=pipeline.resources
    )
    shown = metadata(result, "event_summary")
    people = unknown_people(pipeline.repo, event.id, _version(pipeline))
    assert len(people) >= 2  # Obama and Kit Harington at least (test above)
    assert shown["unknown_people"] == len(people)
    assert shown["unknown_people_photos"] == sum(p.photos for p in people)
    table = str(shown["unknown_people_clusters"])
    assert all(f"| {p.cluster_id} | {p.photos} | {p.faces} |" in table for p in people)
    assert "Photographer" not in table and ".jpg" not in table and "data:image" not in table

    from picsaris_pipeline.orchestration.app import App

    # The CLI and the report on the pipeline's database and local bucket (PICSARIS_HOME/bucket).
    for name in ("PICSARIS_BUCKET", "PICSARIS_S3_ENDPOINT_URL", "PICSARIS_FACE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PICSARIS_DATABASE_URL", url_shown(pipeline.repo))
    monkeypatch.setenv("PICSARIS_HOME", str(tmp_path))
    index = write_report(App.from_env(), event.id, tmp_path / "report")
    with (index.parent / "unknown_people.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(rows, key=lambda r: r["cluster_id"]) == sorted(
        ({"cluster_id": p.cluster_id, "photos": str(p.photos), "faces": str(p.faces)} for p in people),
        key=lambda r: r["cluster_id"],
    )
    page = index.read_text()
    assert "People not signed up" in page and all(p.cluster_id in page for p in people)

    from tests.support.cli_runner import picsaris

    listed = json.loads(picsaris("clusters", event.id, "--format", "json", "--recluster"))
    assert {row["cluster_id"]: row["photos"] for row in listed} == {p.cluster_id: p.photos for p in people}
    biggest = max(p.photos for p in people)
    assert json.loads(picsaris("clusters", event.id, "--format", "json", "--min-photos", str(biggest + 1))) == []


@pytest.fixture
def pipeline_on_both(tmp_path, database_url):
    """The pipeline on SQLite and on PostgreSQL."""
    from tests.support.pipeline_helpers import Pipeline

    with dg.instance_for_test() as instance:
        yield Pipeline.build(tmp_path, instance, database_url)


def test_a_late_joiner_claims_their_cluster_and_withdrawal_or_erasure_takes_their_faces_out(
    pipeline_on_both, shared_photos
):
    pipeline = pipeline_on_both
    event = pipeline.event()
    photos = _event_of_strangers(pipeline, event, shared_photos)
    version = _version(pipeline)
    obama_photos = sorted(photos[n] for n in OBAMA)
    kit_photos = sorted(photos[n] for n in KIT)
    (obama_cluster,) = {c for c, _ in _cluster_of(pipeline, obama_photos)}

    obama = pipeline.attendee(event, "Barack Obama", shared_photos["obama_3.jpg"].path)
    result = pipeline.run_attendee(obama.id)
    assert result.success
    assert sorted(metadata(result, "attendee_matches")["photo_ids"]) == obama_photos
    matched = {m.photo_id for m in pipeline.repo.list_matches(event.id) if m.attendee_id == obama.id}
    assert sorted(matched) == obama_photos
    # The cluster is his now: not listed as an unknown person, and re-matching keeps his matches.
    assert obama_cluster not in {p.cluster_id for p in unknown_people(pipeline.repo, event.id, version)}
    for photo_id in obama_photos:
        pipeline.repo.reset_for_rerun([photo_id])
        assert pipeline.run_photo(photo_id).success
    assert {m.photo_id for m in pipeline.repo.list_matches(event.id) if m.attendee_id == obama.id} == matched

    withdraw_consent(pipeline.repo, pipeline.resources["face_engine"].get(), RecordingPublisher(), obama.id, 0.45)
    assert not [m for m in pipeline.repo.list_matches(event.id) if m.attendee_id == obama.id]
    recluster_event(pipeline.repo, event.id, version)
    assert _cluster_of(pipeline, obama_photos) == [(None, "withheld")] * 3
    assert all(obama_photos[0] not in p.photo_ids for p in unknown_people(pipeline.repo, event.id, version, 1))

    kit = pipeline.attendee(event, "Kit Harington", shared_photos["kit_harington_2.jpg"].path)
    assert pipeline.run_attendee(kit.id).success
    assert {m.photo_id for m in pipeline.repo.list_matches(event.id) if m.attendee_id == kit.id} == set(kit_photos)
    delete_attendee(pipeline.repo, pipeline.store, pipeline.instance, kit.id)
    recluster_event(pipeline.repo, event.id, version)
    assert _cluster_of(pipeline, kit_photos) == [(None, "withheld")] * 3
    # Only Alex Lacamoire's faces are left as unknown people.
    left = unknown_people(pipeline.repo, event.id, version, min_photos=1)
    assert sorted(p for person in left for p in person.photo_ids) == sorted(photos[n] for n in ALEX)
