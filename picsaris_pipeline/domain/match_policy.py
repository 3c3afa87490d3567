"""The matching policy: which faces of a photo are confidently a guest, which are only worth asking
that guest about, and which are nobody. Pure numpy, no I/O.

Open-set identification at event scale: most faces in an event's photos belong to people who never
signed up, and with hundreds of guests some guest is always fairly close to a stranger. A fixed
distance tuned on a handful of people (0.55) gave a quarter of strangers' photos to some guest on
LFW (bench/policy.py). The policy below adds what the numbers there support:

- a tighter confident bar (`min_similarity`);
- a margin: the nearest guest must be clearly nearer than the second-nearest (`margin`), because a
  stranger tends to sit at similar distances from several guests while a guest's own photo stands out;
- several references per guest (the sign-up selfie plus confirmed faces and faces matched with high
  confidence, consent permitting): a face is scored against a guest's nearest reference;
- a candidate tier (`candidate_similarity`): a face that misses the confident bar but is near one
  guest is proposed to that guest alone, privately, for a "this is me" confirmation;
- a crowding correction (`crowding_weight`): a guest whose selfie sits close to many other guests'
  selfies sits close to many strangers too (a "hub" of the descriptor space), so their bar rises
  by part of how much more crowded their neighbourhood is than the event's median guest's, and an
  uncrowded guest's falls by as much; the event's own guest list is the cohort (bench/pipeline_replay.py);
- one face per guest per photo, best pairs first, as before.

The policy's id (`MatchPolicy.id`) names every parameter; it is recorded on every match and
candidate and is part of the matching code version, so a change re-matches (services/versions.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from picsaris_pipeline.domain.matching import DEFAULT_MIN_SIMILARITY, Assignment, similarities


@dataclass(frozen=True)
class MatchPolicy:
    min_similarity: float  # confident: similarity (1 - distance) to the nearest guest at least this
    margin: float  # ... and at least this much above the second-nearest guest
    candidate_similarity: float  # proposed to the nearest guest (privately) from this similarity on
    reference_similarity: float  # a confident match this close becomes one more reference (> 1: never)
    max_references: int = 8  # references kept per guest and model version (the selfie included)
    # A candidate's nearest guest must lead the second-nearest by this much too: a face halfway
    # between several guests is a stranger more often than not, and proposing it shows a stranger's
    # photo to a guest (privately, but still).
    candidate_margin: float = 0.0
    # How much of a guest's crowding above the event's median (guest_crowding) is added to their
    # bars, and over how many nearest other guests crowding is measured. 0: no correction.
    crowding_weight: float = 0.0
    crowding_neighbours: int = 10

    @property
    def id(self) -> str:
        """e.g. s0.5-m0.1-c0.47-cm0.06-r2-n8-h0.5k10: every parameter, so two policies never share an
        id (without a crowding correction the id is what it was before the correction existed)."""
        crowding = f"-h{self.crowding_weight:g}k{self.crowding_neighbours}" if self.crowding_weight else ""
        return (
            f"s{self.min_similarity:g}-m{self.margin:g}-c{self.candidate_similarity:g}"
            f"-cm{self.candidate_margin:g}-r{self.reference_similarity:g}-n{self.max_references}{crowding}"
        )

    def with_min_similarity(self, min_similarity: float) -> MatchPolicy:
        """The same policy with another confident bar (PICSARIS_MATCH_THRESHOLD); the candidate bar
        never rises above it."""
        return replace(
            self, min_similarity=min_similarity, candidate_similarity=min(self.candidate_similarity, min_similarity)
        )


# Tuned on lfw-dev by bench/policy.py (docs/QUALITY.md "Matching policy") on the default model's
# descriptors (YuNet boxes, dlib 5-point + ResNet): 400 guests enrolled from one selfie each, 800
# strangers' photos; tuned for precision >= 0.993 on seed 1 (headroom over 0.99:
# at ~550 matches an event, one error moves precision by ~0.002), reported on seeds 2-4. Candidates:
# the most recall after confirmations with wrong proposals <= 2% of photos. References from strong
# matches are off: no seed gained a point of recall from them, and precision fell (margins shrink as
# guests gain references); confirmed faces do become references. The crowding correction was tuned
# on the pipeline's own faces (bench/pipeline_replay.py over bench/quality.py runs, seeds 3-5, every
# seed >= 0.99), reported on seeds 6 and 2: it kept a hub guest from taking strangers' photos at
# the same bar and margin, and gave the recall back to the guests whose neighbourhood is empty.
DEFAULT_POLICY = MatchPolicy(
    min_similarity=DEFAULT_MIN_SIMILARITY,
    margin=0.1,
    candidate_similarity=0.47,
    reference_similarity=2.0,
    candidate_margin=0.06,
    crowding_weight=0.5,
    crowding_neighbours=10,
)
# The rule before the policy: nearest guest if similarity >= 0.45, no margin, no candidates.
LEGACY_POLICY = MatchPolicy(
    min_similarity=0.45, margin=0.0, candidate_similarity=0.45, reference_similarity=2.0, max_references=1
)


@dataclass(frozen=True)
class Decision:
    matches: list[Assignment]  # confident: stored as matches, announced on the event's channel
    candidates: list[Assignment]  # proposed to that guest alone
    references: list[Assignment]  # the matches close enough to become references

    @property
    def matched_attendees(self) -> list[int]:
        return [a.attendee_index for a in self.matches]


def attendee_scores(faces: np.ndarray, references: np.ndarray, owners: Sequence[int], attendees: int) -> np.ndarray:
    """(faces, attendees) similarity of each face to each attendee's nearest reference; owners[i] is
    the attendee index of references[i]. Attendees without a reference score -inf."""
    scores = np.full((len(faces), attendees), -np.inf, dtype=np.float32)
    if len(faces) == 0 or len(references) == 0:
        return scores
    by_reference = similarities(faces, references)
    np.maximum.at(scores.T, np.asarray(owners, dtype=np.int64), by_reference.T)
    return scores


def guest_crowding(selfies: np.ndarray, neighbours: int) -> np.ndarray:
    """(attendees,) how crowded each guest's neighbourhood is: the mean similarity of their selfie to
    the `neighbours` nearest other guests' selfies (fewer in a small event; nan alone)."""
    count = len(selfies)
    if count < 2:
        return np.full(count, np.nan)
    between = similarities(selfies, selfies).astype(np.float64)
    np.fill_diagonal(between, -np.inf)
    k = min(neighbours, count - 1)
    nearest = -np.partition(-between, k - 1, axis=1)[:, :k]  # the k largest, in no order
    return nearest.mean(axis=1)


def crowding_bias(crowding: np.ndarray, policy: MatchPolicy) -> np.ndarray | None:
    """(attendees,) what decide() adds to each guest's bars: crowding_weight times their crowding
    above the event's median guest (negative below it); None without a correction."""
    known = crowding[np.isfinite(crowding)]
    if not policy.crowding_weight or len(known) == 0:
        return None
    return policy.crowding_weight * np.nan_to_num(crowding - float(np.median(known)), nan=0.0)


def decide(
    scores: np.ndarray,
    policy: MatchPolicy,
    matchable: np.ndarray | None = None,
    excluded: np.ndarray | None = None,
    forced: Sequence[tuple[int, int]] = (),
    bias: np.ndarray | None = None,
) -> Decision:
    """Apply the policy to one photo's (faces, attendees) similarity matrix.

    matchable: per face, False for faces too small, blurred or turned away to be matched (the
    detector's quality gate); such faces are neither matched nor proposed.
    excluded: (faces, attendees) True where the guest said "not me" for this photo.
    forced: (face, attendee) pairs the guest confirmed; they are matches whatever the scores.
    bias: (attendees,) added to each guest's bars (crowding_bias); every rule compares scores less
    the bias, while matches and candidates keep their plain similarity.
    """
    faces, attendees = scores.shape
    if faces == 0 or attendees == 0:
        return Decision([], [], [])
    raw = scores
    if bias is not None:
        scores = scores.astype(np.float64) - np.asarray(bias, dtype=np.float64)[None, :]
    work = scores.astype(np.float64)  # always a copy: the rules below overwrite it
    if excluded is not None:
        work[excluded] = -np.inf
    usable = np.ones(faces, dtype=bool) if matchable is None else np.asarray(matchable, dtype=bool)
    work[~usable] = -np.inf
    # The margin is to the second-nearest guest over the whole guest list, the excluded one included:
    # a refusal must not make a face look more distinctive than it is.
    ordered = np.sort(scores, axis=1)[:, ::-1]
    second = ordered[:, 1] if attendees > 1 else np.full(faces, -np.inf)
    used_faces: set[int] = set()
    used_attendees: set[int] = set()
    matches: list[Assignment] = []
    for face, attendee in forced:
        if face in used_faces or attendee in used_attendees or not usable[face]:
            continue
        used_faces.add(face)
        used_attendees.add(attendee)
        matches.append(Assignment(face, attendee, float(raw[face, attendee])))
    with np.errstate(invalid="ignore"):  # -inf - -inf (no reference, or excluded): nan, never confident
        confident = (work >= policy.min_similarity) & (work - second[:, None] >= policy.margin - 1e-9)
    # Where the nearest guest is the one being tested, `second` is the runner-up; for any other guest
    # work - second < 0 <= margin fails unless margin is 0 (the legacy rule, which takes best pairs).
    for face, attendee in _best_first(work, confident):
        if face in used_faces or attendee in used_attendees:
            continue
        used_faces.add(face)
        used_attendees.add(attendee)
        matches.append(Assignment(face, attendee, float(raw[face, attendee])))
    candidates: list[Assignment] = []
    for face in range(faces):
        if face in used_faces or not usable[face]:
            continue
        attendee = int(np.argmax(work[face]))
        value = work[face, attendee]
        distinct = value - second[face] >= policy.candidate_margin - 1e-9 if attendees > 1 else True
        if value >= policy.candidate_similarity and distinct and attendee not in used_attendees:
            used_attendees.add(attendee)
            candidates.append(Assignment(face, attendee, float(raw[face, attendee])))
    references = [a for a in matches if a.similarity >= policy.reference_similarity]
    return Decision(
        sorted(matches, key=lambda a: a.face_index),
        sorted(candidates, key=lambda a: a.face_index),
        sorted(references, key=lambda a: a.face_index),
    )


def _best_first(scores: np.ndarray, allowed: np.ndarray) -> list[tuple[int, int]]:
    face_idx, attendee_idx = np.nonzero(allowed)
    order = np.argsort(-scores[face_idx, attendee_idx], kind="stable")
    return [(int(face_idx[i]), int(attendee_idx[i])) for i in order]
