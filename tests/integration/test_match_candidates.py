"""The matching policy in the pipeline, on real faces of ../shared/faces: candidates proposed to
their guest alone on the private topic, confirmed or refused through the library and the CLI, a
confirmed face becoming a match and a reference, a refused one never proposed again, late joiners
through the same policy, and a policy change re-matching through services/versions.py.

A candidate needs a face between the loose bar and the confident one: the confident bar is set just
above the similarity the stored vectors actually have, so the tests do not depend on a tuned number."""

from __future__ import annotations

import json

import numpy as np
import pytest

from picsaris_pipeline.db.repository import CANDIDATE_CONFIRMED, CANDIDATE_PROPOSED, CANDIDATE_REFUSED
from picsaris_pipeline.domain.match_policy import DEFAULT_POLICY
from picsaris_pipeline.domain.matching import similarities
from picsaris_pipeline.errors import BadInputError, NotFoundError
from picsaris_pipeline.services.confirmations import confirm, refuse
from picsaris_pipeline.services.delivery import deliver
from picsaris_pipeline.services.photos import match_photo
from picsaris_pipeline.services.policy_matching import policy_for
from picsaris_pipeline.services.versions import rematch_for_policy
from tests.support.cli_runner import picsaris
from tests.support.db_helpers import fetch_rows
from tests.support.publishers import RecordingPublisher


def _similarity(repo, photo, attendee, version) -> float:
    """The photo's best face against every reference the guest has (selfie and strong matches)."""
    _, vectors = repo.photo_vectors(photo.id, version)
    attendee_ids, owners, references = repo.event_reference_sets(photo.event_id, version)
    mine = references[[o == attendee_ids.index(attendee.id) for o in owners]]
    return float(similarities(vectors, mine).max())


@pytest.fixture
def kit_event(pipeline, event, shared_photos):
    """Kit Harington and Rose Leslie signed up; two further photos of Kit published under the default
    policy, where he is a confident match (the closer one also a new reference of his); the bar that
    turns him into a candidate in both."""
    kit, rose = pipeline.signed_up(
        event,
        ("Kit Harington", shared_photos["kit_harington_2.jpg"].path),
        ("Rose Leslie", shared_photos["rose_leslie_1.jpg"].path),
    )
    photos = [
        pipeline.upload(event, rose, shared_photos[name].path.read_bytes(), name)
        for name in ("kit_harington_3.jpg", "kit_harington_1.jpg")
    ]
    for photo in photos:
        assert pipeline.run_photo(photo.id).success
    version = pipeline.resources["face_engine"].get().model_version
    scores = [_similarity(pipeline.repo, p, kit, version) for p in photos]
    bar = max(scores) + 0.02  # above both photos: Kit is only a candidate in each
    assert min(scores) >= policy_for(bar).candidate_similarity, "the loose bar must still reach Kit's photos"
    return {"kit": kit, "rose": rose, "photos": [pipeline.repo.get_photo(p.id) for p in photos], "bar": bar}


def test_published_matches_carry_the_policy_id(pipeline, event, kit_event):
    matches = pipeline.repo.list_matches(event.id)
    assert {m.attendee_id for m in matches} == {kit_event["kit"].id}
    import sqlalchemy as sa

    from picsaris_pipeline.db import schema as t

    policies = {row.policy_id for row in fetch_rows(pipeline.repo, sa.select(t.matches.c.policy_id))}
    assert policies == {DEFAULT_POLICY.id}


def test_below_the_confident_bar_a_face_is_proposed_to_its_guest_alone_and_privately(pipeline, event, kit_event):
    repo, kit, photo = pipeline.repo, kit_event["kit"], kit_event["photos"][0]
    version = repo.get_event(event.id).active_model_version
    publisher = RecordingPublisher()
    deliver(repo, publisher)  # what the default policy announced
    publisher.sent.clear()
    assert match_photo(repo, photo, version, kit_event["bar"]) == []
    deliver(repo, publisher, photo.id)
    assert [(c.photo_id, c.attendee_id, c.status) for c in repo.list_candidates(event.id)] == [
        (photo.id, kit.id, CANDIDATE_PROPOSED)
    ]
    to_kit = [m for m in publisher.sent if m.topic == f"attendee:{kit.id}"]
    assert [(m.event, m.private, m.payload["candidate"]) for m in to_kit] == [("photo_candidate", True, True)]
    # The event's gallery hears that the photo holds nobody now; never Kit's name as a candidate.
    for message in publisher.sent:
        if message.topic == f"event:{event.id}":
            assert kit.id not in message.payload["attendee_ids"]
    assert {m.topic for m in publisher.sent} <= {f"attendee:{kit.id}", f"event:{event.id}"}
    assert repo.list_matches(event.id, photo_id=photo.id) == []


def test_confirming_makes_the_candidate_a_match_and_a_reference_and_announces_it(pipeline, event, kit_event):
    repo, kit, photo = pipeline.repo, kit_event["kit"], kit_event["photos"][0]
    version = repo.get_event(event.id).active_model_version
    match_photo(repo, photo, version, kit_event["bar"])
    publisher = RecordingPublisher()
    deliver(repo, publisher)
    publisher.sent.clear()
    before = repo.attendee_reference_count(kit.id, version)  # his strong matches may already be some
    answer = confirm(repo, publisher, photo.id, kit.id, kit_event["bar"])
    assert answer.changed and answer.matched
    assert [m.attendee_id for m in repo.list_matches(event.id, photo_id=photo.id)] == [kit.id]
    assert repo.get_candidate(photo.id, kit.id).status == CANDIDATE_CONFIRMED
    assert repo.attendee_reference_count(kit.id, version) == before + 1  # the confirmed face
    to_kit = [m for m in publisher.sent if m.topic == f"attendee:{kit.id}"]
    assert [m.event for m in to_kit] == ["photo_matched"]
    gallery = [m for m in publisher.sent if m.topic == f"event:{event.id}"]
    assert gallery and gallery[-1].payload["attendee_ids"] == [kit.id]
    # Re-matching keeps the confirmed match whatever the bar; confirming again changes nothing.
    match_photo(repo, photo, version, 0.99)
    assert [m.attendee_id for m in repo.list_matches(event.id, photo_id=photo.id)] == [kit.id]
    assert not confirm(repo, publisher, photo.id, kit.id, kit_event["bar"]).changed
    # The confirmed face is one more reference of his for the next photos.
    attendee_ids, owners, references = repo.event_reference_sets(event.id, version)
    assert owners.count(attendee_ids.index(kit.id)) == before + 2 and len(references) == len(owners)


def test_a_refused_candidate_is_never_proposed_or_matched_again(pipeline, event, kit_event):
    repo, kit, photo = pipeline.repo, kit_event["kit"], kit_event["photos"][1]
    version = repo.get_event(event.id).active_model_version
    match_photo(repo, photo, version, kit_event["bar"])
    assert refuse(repo, photo.id, kit.id).changed
    for bar in (kit_event["bar"], policy_for(None).min_similarity):  # even where he would be confident
        assert match_photo(repo, photo, version, bar) == []
        assert repo.get_candidate(photo.id, kit.id).status == CANDIDATE_REFUSED
    assert repo.list_candidates(event.id, status=CANDIDATE_PROPOSED) == []
    with pytest.raises(BadInputError, match="final"):
        confirm(repo, RecordingPublisher(), photo.id, kit.id, kit_event["bar"])
    with pytest.raises(NotFoundError):
        refuse(repo, photo.id, kit_event["rose"].id)  # never proposed to her


def test_a_late_joiner_goes_through_the_same_policy(pipeline, event, shared_photos, kit_event):
    # Obama signs up after his photo was published: at a bar above his similarity he is proposed,
    # not matched, exactly as if he had signed up first.
    from picsaris_pipeline.services.attendees import match_late_joiner

    repo = pipeline.repo
    rose = kit_event["rose"]
    photo = pipeline.upload(event, rose, shared_photos["obama_2.jpg"].path.read_bytes(), "obama_2.jpg")
    assert pipeline.run_photo(photo.id).success
    obama = pipeline.attendee(event, "Barack Obama", shared_photos["obama_1.jpg"].path)
    assert pipeline.run_attendee(obama.id).success
    version = repo.get_event(event.id).active_model_version
    assert [m.attendee_id for m in repo.list_matches(event.id, photo_id=photo.id)] == [obama.id]
    bar = _similarity(repo, photo, obama, version) + 0.02
    repo.replace_matches(photo, version, [])  # as if he had not been found yet
    found = match_late_joiner(repo, RecordingPublisher(), obama.id, version, bar)
    assert found == []
    assert [c.attendee_id for c in repo.list_candidates(event.id, status=CANDIDATE_PROPOSED)] == [obama.id]


def test_a_policy_change_re_matches_the_event_through_the_version_machinery(pipeline, event, kit_event):
    repo = pipeline.repo
    version = repo.get_event(event.id).active_model_version
    stricter = policy_for(kit_event["bar"])
    assert stricter.id != DEFAULT_POLICY.id
    photos = {p.id for p in kit_event["photos"]}
    assert repo.photos_matched_under_other_policy(event.id, version, DEFAULT_POLICY.id) == []
    assert {p.id for p in repo.photos_matched_under_other_policy(event.id, version, stricter.id)} == photos
    publisher = RecordingPublisher()
    assert set(rematch_for_policy(repo, publisher, event.id, version, kit_event["bar"])) == photos
    assert repo.list_matches(event.id) == []
    assert {c.policy_id for c in repo.list_candidates(event.id)} == {stricter.id}
    assert all(repo.photo_policy(p, version) == stricter.id for p in photos)
    assert rematch_for_policy(repo, publisher, event.id, version, kit_event["bar"]) == []  # nothing left
    # And the Dagster code version of the matching assets names the policy, so the UI shows them stale.
    from picsaris_pipeline.definitions import code_versions
    from picsaris_pipeline.faces.engine import configured_versions

    versions = configured_versions("dlib")
    assert DEFAULT_POLICY.id in code_versions(versions, None)["matches_published"]
    assert stricter.id in code_versions(versions, kit_event["bar"])["attendee_matches"]


def test_the_cli_lists_confirms_and_refuses_candidates(picsaris_home, shared_photos, monkeypatch):
    from picsaris_pipeline.domain.imaging import decode_photo, encode_jpeg, load_rgb
    from picsaris_pipeline.faces.dlib_engine import DlibEngine

    # The bar, measured the way the pipeline embeds a selfie and a photo.
    engine = DlibEngine.shared()
    selfie = decode_photo(shared_photos["kit_harington_2.jpg"].path.read_bytes()).image
    reference = engine.embed(selfie, engine.detect(selfie)[:1])
    scores = []
    for name in ("kit_harington_3.jpg", "kit_harington_1.jpg"):
        image = load_rgb(encode_jpeg(decode_photo(shared_photos[name].path.read_bytes()).image))
        scores.append(float(similarities(engine.embed(image, engine.detect(image)), reference).max()))
    monkeypatch.setenv("PICSARIS_MATCH_THRESHOLD", f"{max(scores) + 0.03:.4f}")
    event_id = picsaris("event", "create", "Candidates").strip()
    kit = picsaris(
        "attendee", "add", event_id, "--name", "Kit", "--selfie", str(shared_photos["kit_harington_2.jpg"].path)
    ).strip()
    paths = [str(shared_photos[n].path) for n in ("kit_harington_3.jpg", "kit_harington_1.jpg")]
    confirmed, refused = picsaris("upload", event_id, "--uploader", kit, *paths).split()
    picsaris("process")
    assert "Kit" not in picsaris("matches", event_id)
    rows = json.loads(picsaris("match", "candidates", event_id, "--format", "json"))
    assert {(r["photo_id"], r["attendee_id"], r["status"]) for r in rows} == {
        (confirmed, kit, "proposed"),
        (refused, kit, "proposed"),
    }
    picsaris("match", "confirm", confirmed, kit)
    picsaris("match", "refuse", refused, kit)
    matches = json.loads(picsaris("matches", event_id, "--format", "json"))
    assert [(m["photo_id"], m["attendee_id"]) for m in matches] == [(confirmed, kit)]
    statuses = {
        r["photo_id"]: r["status"] for r in json.loads(picsaris("match", "candidates", event_id, "--format", "json"))
    }
    assert statuses == {confirmed: "confirmed", refused: "refused"}
    # A new policy (the default bar again): rematch keeps the refusal, and the confirmation.
    monkeypatch.delenv("PICSARIS_MATCH_THRESHOLD")
    picsaris("match", "rematch", "--event", event_id)
    matches = json.loads(picsaris("matches", event_id, "--format", "json"))
    assert [(m["photo_id"], m["attendee_id"]) for m in matches] == [(confirmed, kit)]
    assert np.isfinite([m["similarity"] for m in matches]).all()
