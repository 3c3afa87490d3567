"""The matching policy's rules (picsaris_pipeline.domain.match_policy) on real dlib descriptors of
../shared/faces and a small slice of ../shared/lfw-dev: each threshold is placed from the measured
similarities of the faces themselves, so the tests check the rules, not a tuned number."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from picsaris_pipeline.domain.match_policy import (
    DEFAULT_POLICY,
    LEGACY_POLICY,
    MatchPolicy,
    attendee_scores,
    crowding_bias,
    decide,
    guest_crowding,
)
from picsaris_pipeline.domain.matching import similarities
from tests.support.environment import REPO_ROOT, missing

LFW = REPO_ROOT.parent / "shared" / "lfw-dev"


def _embed(path: Path) -> np.ndarray:
    from picsaris_pipeline.domain.imaging import decode_photo
    from picsaris_pipeline.faces.dlib_engine import DlibEngine

    engine = DlibEngine.shared()
    image = decode_photo(path.read_bytes()).image
    boxes = engine.detect(image)
    assert boxes, f"no face found in {path.name}"
    return engine.embed(image, boxes)


@pytest.fixture(scope="module")
def faces(shared_faces_dir: Path) -> dict[str, np.ndarray]:
    """The largest face of each single-person shared photo, and every face of the group shots."""
    names = ["obama_1.jpg", "obama_2.jpg", "obama_3.jpg", "biden_1.jpg", "biden_2.jpg", "kit_harington_2.jpg"]
    names += ["kit_harington_3.jpg", "rose_leslie_1.jpg", "tom_cruise_1.jpg", "group_obama_and_biden.jpg"]
    return {name: _embed(shared_faces_dir / name) for name in names}


@pytest.fixture(scope="module")
def lfw_slice() -> dict[str, list[np.ndarray]]:
    """Three people with several lfw-dev photos each: person -> their photos' centre faces."""
    if not (LFW / "MANIFEST.csv").exists():
        missing(f"lfw-dev is not at {LFW}")
    people = {"Vladimir_Putin": 4, "Tony_Blair": 4, "Serena_Williams": 3}
    out: dict[str, list[np.ndarray]] = {}
    for person, count in people.items():
        files = sorted((LFW / person).glob("*.jpg"))[:count]
        out[person] = [_embed(path)[0] for path in files]
    return out


def one(faces: dict[str, np.ndarray], name: str) -> np.ndarray:
    return faces[name][:1]


def test_policy_id_names_every_parameter_and_changes_with_each():
    ids = {
        DEFAULT_POLICY.id,
        replace(DEFAULT_POLICY, min_similarity=0.52).id,
        replace(DEFAULT_POLICY, margin=0.09).id,
        replace(DEFAULT_POLICY, candidate_similarity=0.44).id,
        replace(DEFAULT_POLICY, reference_similarity=0.61).id,
        replace(DEFAULT_POLICY, max_references=4).id,
        replace(DEFAULT_POLICY, crowding_weight=0.3).id,
        replace(DEFAULT_POLICY, crowding_weight=0.3, crowding_neighbours=5).id,
        replace(DEFAULT_POLICY, crowding_weight=0.6).id,
    }
    assert len(ids) == 9
    # Without a correction the id is what it was before the correction existed (no re-match).
    assert "-h" not in replace(DEFAULT_POLICY, crowding_weight=0.0).id
    assert DEFAULT_POLICY.id.startswith(f"s{DEFAULT_POLICY.min_similarity:g}-m{DEFAULT_POLICY.margin:g}-")


def test_the_confident_bar_separates_a_match_from_a_candidate(faces):
    # Obama enrolled from one photo; another photo of him scores s: just above the bar it is a
    # match, just below it only a candidate (above the loose bar), far below it nothing.
    references = one(faces, "obama_1.jpg")
    photo = one(faces, "obama_2.jpg")
    scores = attendee_scores(photo, references, [0], 1)
    s = float(scores[0, 0])
    assert s == pytest.approx(float(similarities(photo, references)[0, 0]))
    matched = decide(scores, MatchPolicy(s - 0.01, 0.0, s - 0.1, 2.0))
    assert [(a.face_index, a.attendee_index) for a in matched.matches] == [(0, 0)] and not matched.candidates
    proposed = decide(scores, MatchPolicy(s + 0.01, 0.0, s - 0.01, 2.0))
    assert not proposed.matches and [(a.face_index, a.attendee_index) for a in proposed.candidates] == [(0, 0)]
    nothing = decide(scores, MatchPolicy(s + 0.02, 0.0, s + 0.01, 2.0))
    assert not nothing.matches and not nothing.candidates


def test_a_stranger_is_not_matched_under_the_default_policy(faces):
    # Guests Obama, Biden and Kit Harington; Tom Cruise and Rose Leslie never signed up.
    references = np.concatenate([one(faces, n) for n in ("obama_1.jpg", "biden_1.jpg", "kit_harington_2.jpg")])
    for stranger in ("tom_cruise_1.jpg", "rose_leslie_1.jpg"):
        decision = decide(attendee_scores(one(faces, stranger), references, [0, 1, 2], 3), DEFAULT_POLICY)
        assert decision.matches == [] and decision.candidates == []
    guest = decide(attendee_scores(one(faces, "obama_3.jpg"), references, [0, 1, 2], 3), DEFAULT_POLICY)
    assert [a.attendee_index for a in guest.matches + guest.candidates] == [0]


def test_the_margin_refuses_a_face_close_to_two_guests(faces):
    # Two guests who look alike (here: two photos of Obama enrolled as two people). A third photo
    # of him is near both: with a margin larger than the gap it is nobody's confident match, and it is
    # proposed to the nearer guest only; the old rule (no margin) hands it to the nearer one.
    references = np.concatenate([one(faces, "obama_1.jpg"), one(faces, "obama_2.jpg")])
    scores = attendee_scores(one(faces, "obama_3.jpg"), references, [0, 1], 2)
    nearest, other = int(np.argmax(scores[0])), int(np.argmin(scores[0]))
    gap = float(scores[0, nearest] - scores[0, other])
    bar = float(scores[0, other]) - 0.05  # both guests clear the bar
    wide = decide(scores, MatchPolicy(bar, gap + 0.01, bar - 0.05, 2.0))
    assert wide.matches == []
    assert [(a.attendee_index) for a in wide.candidates] == [nearest]
    narrow = decide(scores, MatchPolicy(bar, max(0.0, gap - 0.01), bar - 0.05, 2.0))
    assert [a.attendee_index for a in narrow.matches] == [nearest]
    # Alone on the guest list, the same face is a confident match under the same wide margin.
    alone = decide(scores[:, [nearest]], MatchPolicy(bar, gap + 0.01, bar - 0.05, 2.0))
    assert [a.attendee_index for a in alone.matches] == [0]


def test_several_references_score_a_face_by_the_nearest_one(lfw_slice):
    # Vladimir Putin enrolled from one photo, then with a second reference: a further photo of him
    # scores the better of the two, which can lift it over a bar the selfie alone misses.
    putin = lfw_slice["Vladimir_Putin"]
    photo = putin[3][None, :]
    selfie_only = attendee_scores(photo, putin[0][None, :], [0], 1)[0, 0]
    two = attendee_scores(photo, np.stack([putin[0], putin[1]]), [0, 0], 1)[0, 0]
    each = similarities(photo, np.stack([putin[0], putin[1]]))[0]
    assert two == pytest.approx(float(each.max())) and two >= selfie_only
    if two > selfie_only:
        bar = float((two + selfie_only) / 2)
        policy = MatchPolicy(bar, 0.0, bar - 0.2, 2.0)
        assert decide(np.array([[selfie_only]]), policy).matches == []
        assert len(decide(np.array([[two]]), policy).matches) == 1
    # Other guests' references never count for this guest.
    others = np.stack([putin[0], lfw_slice["Tony_Blair"][0], lfw_slice["Serena_Williams"][0]])
    scores = attendee_scores(photo, others, [0, 1, 2], 3)
    assert int(np.argmax(scores[0])) == 0


def test_strong_matches_are_offered_as_references_weaker_ones_are_not(lfw_slice):
    blair = lfw_slice["Tony_Blair"]
    scores = attendee_scores(np.stack(blair[1:3]), blair[0][None, :], [0], 1)
    # Two photos of one guest: one face per guest per photo, so only the better becomes the match.
    low = float(scores.min()) - 0.05
    decision = decide(scores, MatchPolicy(low, 0.0, low - 0.05, float(scores.max())))
    assert len(decision.matches) == 1 and decision.matches[0].face_index == int(np.argmax(scores[:, 0]))
    assert decision.references == decision.matches
    assert decide(scores, MatchPolicy(low, 0.0, low - 0.05, float(scores.max()) + 0.01)).references == []


def test_one_face_per_guest_per_photo_in_a_group_shot(faces):
    group = faces["group_obama_and_biden.jpg"]
    references = np.concatenate([one(faces, "obama_1.jpg"), one(faces, "biden_1.jpg")])
    scores = attendee_scores(group, references, [0, 1], 2)
    loose = MatchPolicy(0.3, 0.0, 0.2, 2.0)  # loose enough that several faces clear it for one guest
    decision = decide(scores, loose)
    guests = [a.attendee_index for a in decision.matches + decision.candidates]
    assert len(guests) == len(set(guests))
    faces_used = [a.face_index for a in decision.matches + decision.candidates]
    assert len(faces_used) == len(set(faces_used))
    strict = decide(scores, DEFAULT_POLICY)
    assert sorted(a.attendee_index for a in strict.matches) == [0, 1]


def test_a_face_marked_not_matchable_is_neither_matched_nor_proposed(faces):
    group = faces["group_obama_and_biden.jpg"]
    references = np.concatenate([one(faces, "obama_1.jpg"), one(faces, "biden_1.jpg")])
    scores = attendee_scores(group, references, [0, 1], 2)
    full = decide(scores, DEFAULT_POLICY)
    obama_face = next(a.face_index for a in full.matches if a.attendee_index == 0)
    mask = np.ones(len(group), dtype=bool)
    mask[obama_face] = False
    gated = decide(scores, DEFAULT_POLICY, matchable=mask)
    assert all(a.face_index != obama_face for a in gated.matches + gated.candidates)
    assert [a.attendee_index for a in gated.matches] == [1]


def test_a_refusal_excludes_the_guest_and_a_confirmation_forces_the_match(faces):
    references = one(faces, "kit_harington_2.jpg")
    scores = attendee_scores(one(faces, "kit_harington_3.jpg"), references, [0], 1)
    s = float(scores[0, 0])
    policy = MatchPolicy(s + 0.01, 0.0, s - 0.05, 2.0)  # a candidate, as measured
    assert len(decide(scores, policy).candidates) == 1
    refused = decide(scores, policy, excluded=np.array([[True]]))
    assert refused.matches == [] and refused.candidates == []
    confirmed = decide(scores, policy, forced=[(0, 0)])
    assert [(a.face_index, a.attendee_index) for a in confirmed.matches] == [(0, 0)] and not confirmed.candidates


def test_the_legacy_policy_is_the_old_rule(faces):
    # Nearest guest if similarity >= 0.45, nothing proposed: what matching.assign did for one face.
    from picsaris_pipeline.domain.matching import assign

    references = np.concatenate([one(faces, n) for n in ("obama_1.jpg", "biden_1.jpg", "kit_harington_2.jpg")])
    for name in ("obama_2.jpg", "biden_2.jpg", "tom_cruise_1.jpg", "kit_harington_3.jpg"):
        photo = one(faces, name)
        old = assign(photo, references, LEGACY_POLICY.min_similarity)
        new = decide(attendee_scores(photo, references, [0, 1, 2], 3), LEGACY_POLICY)
        assert [(a.face_index, a.attendee_index) for a in new.matches] == [
            (a.face_index, a.attendee_index) for a in old
        ]
        assert new.candidates == []


def test_a_crowded_guest_needs_a_closer_face_than_an_uncrowded_one(faces):
    # Guests: two photos of Obama enrolled as two people (each other's lookalike), Biden and Kit
    # Harington. The Obama guests sit closest to another guest, so their bars rise and the others' fall.
    selfies = np.concatenate(
        [one(faces, n) for n in ("obama_1.jpg", "obama_2.jpg", "biden_1.jpg", "kit_harington_2.jpg")]
    )
    crowding = guest_crowding(selfies, neighbours=1)
    between = similarities(selfies, selfies)
    assert crowding[0] == pytest.approx(float(between[0, 1]), abs=1e-5)  # the nearest other guest
    assert min(crowding[0], crowding[1]) > max(crowding[2], crowding[3])
    policy = replace(DEFAULT_POLICY, margin=0.0, crowding_weight=1.0, crowding_neighbours=1)
    bias = crowding_bias(crowding, policy)
    assert bias is not None and bias[0] > 0 > bias[3]
    assert float(np.median(bias)) == pytest.approx(0.0, abs=1e-9)  # relative to the event's median guest
    # A face of Obama that clears the plain bar for the first Obama guest by less than his bias is no
    # longer a match; a match keeps its plain similarity, not the corrected one.
    scores = attendee_scores(one(faces, "obama_3.jpg"), selfies[[0, 2, 3]], [0, 1, 2], 3)
    s = float(scores[0, 0])
    just_under = replace(policy, min_similarity=s - float(bias[0]) / 2, candidate_similarity=0.0)
    assert [a.attendee_index for a in decide(scores, just_under).matches] == [0]
    corrected = decide(scores, just_under, bias=bias[[0, 2, 3]])
    assert corrected.matches == []
    loose = decide(scores, replace(just_under, min_similarity=s - float(bias[0]) - 0.01), bias=bias[[0, 2, 3]])
    assert [(a.attendee_index, a.similarity) for a in loose.matches] == [(0, pytest.approx(s))]


def test_no_crowding_correction_without_a_weight_or_a_second_guest(faces):
    selfies = np.concatenate([one(faces, n) for n in ("obama_1.jpg", "biden_1.jpg")])
    assert crowding_bias(guest_crowding(selfies, 10), replace(DEFAULT_POLICY, crowding_weight=0.0)) is None
    alone = guest_crowding(selfies[:1], 10)
    assert np.isnan(alone).all()
    bias = crowding_bias(alone, replace(DEFAULT_POLICY, crowding_weight=0.5))
    assert bias is None
    # Two guests: each is the other's only neighbour, equally crowded, so neither bar moves.
    pair = crowding_bias(guest_crowding(selfies, 10), replace(DEFAULT_POLICY, crowding_weight=0.5))
    assert pair is not None and np.allclose(pair, 0.0)
