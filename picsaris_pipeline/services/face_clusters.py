"""Unknown-face clusters in the pipeline: placing a published photo's unmatched faces, reclustering
an event for its summary, a late joiner claiming their cluster, and withheld faces of guests who
withdrew or were erased. The grouping itself is domain/clustering.py; the rows are `face_clusters`.

Only vector engines (dlib) have vectors to cluster; under a collection engine (Rekognition) every
function here finds no vectors and does nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain import clustering
from picsaris_pipeline.domain.ids import new_id
from picsaris_pipeline.domain.matching import similarities
from picsaris_pipeline.domain.model import Photo, PhotoStatus, ReferenceStatus
from picsaris_pipeline.realtime import RealtimePublisher

logger = logging.getLogger("picsaris.clusters")


@dataclass(frozen=True)
class UnknownPerson:
    """One unclaimed cluster: ids and counts only (no pictures, no names)."""

    cluster_id: str
    photos: int
    faces: int
    photo_ids: tuple[str, ...]


def with_claimed_faces(
    repo: Repository,
    photo: Photo,
    model_version: str,
    rows: list[tuple[str, str, float]],
    min_similarity: float,
    candidates: Sequence[tuple[str, str, float]] = (),
) -> tuple[list[tuple[str, str, float]], list[tuple[str, str, float]]]:
    """A photo's matches and candidates plus the faces a guest claimed through their cluster (a face
    or guest the matching already used keeps that match), so re-matching the photo keeps the claim.

    The cluster's agreement stands in for the margin, never for the bar: a claimed face at or above
    the confident bar (min_similarity) is a match; one below it is only a candidate, proposed to
    that guest alone (a stranger's photo must never reach a gallery on a cluster's word)."""
    used_faces = {face for face, _, _ in rows} | {face for face, _, _ in candidates}
    used_attendees = {attendee for _, attendee, _ in rows} | {attendee for _, attendee, _ in candidates}
    matched, proposed = list(rows), list(candidates)
    for face_id, attendee_id, similarity in repo.claimed_faces(photo.id, model_version):
        if face_id in used_faces or attendee_id in used_attendees:
            continue
        used_faces.add(face_id)
        used_attendees.add(attendee_id)
        (matched if similarity >= min_similarity else proposed).append((face_id, attendee_id, similarity))
    return matched, proposed


def place_photo_faces(
    repo: Repository,
    photo: Photo,
    model_version: str,
    max_distance: float = clustering.DEFAULT_CLUSTER_MAX_DISTANCE,
) -> int:
    """Put the just-matched photo's unmatched faces into the event's clusters (or new ones), one
    face at a time by the average-linkage rule. Returns how many faces were placed. Two photos
    published at once may each start a cluster for the same person; the summary's recluster
    joins them."""
    faces, vectors = repo.unmatched_face_vectors(photo.event_id, model_version, photo_id=photo.id)
    todo = [(i, face) for i, face in enumerate(faces) if face[3] not in ("claimed", "withheld")]
    if not todo:
        return 0
    members, member_vectors = repo.unmatched_face_vectors(photo.event_id, model_version)
    keep = [i for i, (_, photo_id, cluster_id, state) in enumerate(members) if state == "unclaimed" and cluster_id]
    keep = [i for i in keep if members[i][1] != photo.id]
    labels = [str(members[i][2]) for i in keep]
    known = member_vectors[keep] if keep else member_vectors[:0]
    placed: list[tuple[str, str, str]] = []
    for index, (face_id, photo_id, _, _) in todo:
        # One person appears once per photo: a face never joins a cluster another face of this
        # photo just joined.
        taken = {cluster_id for _, _, cluster_id in placed}
        allowed = [k for k, label in enumerate(labels) if label not in taken]
        label = clustering.place(vectors[index], known[allowed], [labels[k] for k in allowed], max_distance)
        placed.append((face_id, photo_id, label or new_id()))
    repo.replace_unclaimed_clusters(photo.event_id, model_version, placed, only_faces=True)
    return len(placed)


def recluster_event(
    repo: Repository,
    event_id: str,
    model_version: str,
    max_distance: float = clustering.DEFAULT_CLUSTER_MAX_DISTANCE,
) -> int:
    """Cluster all unmatched, unclaimed, not withheld faces of the event's published photos again
    from scratch (the incremental placement only ever adds), keeping the ids of clusters that
    survive. Returns the number of clusters."""
    faces, vectors = repo.unmatched_face_vectors(event_id, model_version)
    keep = [i for i, face in enumerate(faces) if face[3] not in ("claimed", "withheld")]
    labels = clustering.cluster(vectors[keep], max_distance) if keep else clustering.cluster(vectors[:0])
    n_clusters = int(labels.max()) + 1 if len(labels) else 0
    names = clustering.stable_labels(labels, [faces[i][2] for i in keep], [new_id() for _ in range(n_clusters)])
    rows = [(faces[i][0], faces[i][1], name) for i, name in zip(keep, names, strict=True)]
    repo.replace_unclaimed_clusters(event_id, model_version, rows)
    return n_clusters


def unknown_people(
    repo: Repository, event_id: str, model_version: str, min_photos: int = clustering.DEFAULT_MIN_PHOTOS
) -> list[UnknownPerson]:
    """The event's unclaimed clusters of unmatched faces in published photos with at least
    min_photos photos, most photos first."""
    faces, _ = repo.unmatched_face_vectors(event_id, model_version)
    by_cluster: dict[str, list[str]] = defaultdict(list)
    for _, photo_id, cluster_id, state in faces:
        if state == "unclaimed" and cluster_id:
            by_cluster[cluster_id].append(photo_id)
    people = [
        UnknownPerson(cluster_id, len(set(photo_ids)), len(photo_ids), tuple(sorted(set(photo_ids))))
        for cluster_id, photo_ids in by_cluster.items()
        if len(set(photo_ids)) >= min_photos
    ]
    return sorted(people, key=lambda p: (-p.photos, p.cluster_id))


def claim_for_attendee(
    repo: Repository, attendee_id: str, model_version: str, min_similarity: float
) -> tuple[list[str], list[Photo]]:
    """The clusters a new guest's reference claims (clustering.claimable: the cluster's mean
    similarity to the selfie passes the matching threshold) are marked theirs, with
    each face's similarity to the selfie. Returns (claimed cluster ids, published photos to match
    again through the usual write path, which then adds the claimed faces: with_claimed_faces)."""
    attendee = repo.get_attendee(attendee_id)
    if not attendee.consent or attendee.reference_status is not ReferenceStatus.READY:
        return [], []
    reference = repo.attendee_vector(attendee.id, model_version)
    if reference is None:
        return [], []
    # With the faces the late joiner's own re-match has just matched: they are the closest to the
    # selfie and still belong to their clusters.
    faces, vectors = repo.unmatched_face_vectors(attendee.event_id, model_version, or_matched_to=attendee.id)
    keep = [i for i, face in enumerate(faces) if face[3] == "unclaimed" and face[2]]
    if not keep:
        return [], []
    labels = [str(faces[i][2]) for i in keep]
    claimed = clustering.claimable(reference, vectors[keep], labels, min_similarity)
    if not claimed:
        return [], []
    scores = similarities(vectors[keep], reference[None, :])[:, 0]
    similarity_by_face = {
        faces[i][0]: float(score) for i, label, score in zip(keep, labels, scores, strict=True) if label in claimed
    }
    photo_ids = repo.claim_cluster_faces(model_version, attendee.id, similarity_by_face)
    photos = [p for p in repo.photos_by_ids(photo_ids).values() if p.status is PhotoStatus.PUBLISHED]
    logger.info("attendee %s claimed %d cluster(s) in %d photo(s)", attendee.id, len(claimed), len(photos))
    return claimed, sorted(photos, key=lambda p: p.id)


def bring_in_clusters(
    repo: Repository,
    publisher: RealtimePublisher,
    attendee_id: str,
    model_version: str,
    min_similarity: float,
    found: Sequence[str] = (),
) -> list[str]:
    """A late joiner claims their clusters (claim_for_attendee) and each published photo of them is
    matched again and announced through the usual path. Returns, sorted, the ids in `found` (the
    photos their re-match found) plus those where the attendee is now matched thanks to a cluster."""
    # Imported here: services.photos calls into this module from match_photo.
    from picsaris_pipeline.services.delivery import deliver
    from picsaris_pipeline.services.photos import match_photo

    _, photos = claim_for_attendee(repo, attendee_id, model_version, min_similarity)
    result = set(found)
    for photo in photos:
        rows = match_photo(repo, photo, model_version, min_similarity)
        if any(attendee == attendee_id for _, attendee, _ in rows):
            result.add(photo.id)
            deliver(repo, publisher, photo.id)
    return sorted(result)


def unknown_people_metadata(
    repo: Repository, event_id: str, model_version: str, min_photos: int = clustering.DEFAULT_MIN_PHOTOS
) -> dict[str, Any]:
    """For the event summary: recluster the event, then its clusters of >= min_photos photos as a
    markdown table of ids and counts (no pictures, no names, `unknown_people_clusters`, which the
    asset shows as markdown) and their number."""
    recluster_event(repo, event_id, model_version)
    people = unknown_people(repo, event_id, model_version, min_photos)
    lines = [
        f"People in at least {min_photos} photos who have not signed up (clusters of unmatched faces).",
        "",
        "| cluster | photos | faces |",
        "|---|---|---|",
        *(f"| {p.cluster_id} | {p.photos} | {p.faces} |" for p in people),
    ]
    if not people:
        lines.append("| (none) | | |")
    return {
        "unknown_people": len(people),
        "unknown_people_photos": sum(p.photos for p in people),
        "unknown_people_clusters": "\n".join(lines) + "\n",
    }
