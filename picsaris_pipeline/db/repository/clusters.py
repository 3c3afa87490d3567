"""Unknown-face clusters (services/face_clusters.py): grouping, claiming and withholding faces."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository.base import RepositoryBase, _from_blobs, _now
from picsaris_pipeline.db.repository.rows import ClaimedFace, UnmatchedFace
from picsaris_pipeline.domain.model import PhotoStatus, ReferenceStatus


class ClustersRepository(RepositoryBase):
    def unmatched_face_vectors(
        self, event_id: str, model_version: str, photo_id: str | None = None, or_matched_to: str | None = None
    ) -> tuple[list[UnmatchedFace], np.ndarray]:
        """Faces of published photos (or of one photo, whatever its status) with a vector under
        model_version that no match under it points at (or_matched_to: or a match to that
        attendee): ((face_id, photo_id, cluster_id, state) per face, vectors). cluster_id/state are
        the face's cluster row, None where it has none."""
        fv, fc = t.face_vectors, t.face_clusters
        other_match = (
            sa.select(t.matches.c.face_id)
            .where(t.matches.c.face_id == fv.c.face_id)
            .where(t.matches.c.model_version == model_version)
        )
        if or_matched_to is not None:
            other_match = other_match.where(t.matches.c.attendee_id != or_matched_to)
        matched = other_match.exists()
        query = (
            sa.select(fv.c.face_id, fv.c.photo_id, fc.c.cluster_id, fc.c.state, fv.c.vector)
            .join(t.photos, t.photos.c.id == fv.c.photo_id)
            .outerjoin(fc, sa.and_(fc.c.face_id == fv.c.face_id, fc.c.model_version == model_version))
            .where(fv.c.event_id == event_id)
            .where(fv.c.model_version == model_version)
            .where(~matched)
            .order_by(fv.c.photo_id, fv.c.face_id)
        )
        if photo_id is None:
            query = query.where(t.photos.c.status == PhotoStatus.PUBLISHED.value)
        else:
            query = query.where(fv.c.photo_id == photo_id)
        with self._read() as conn:
            rows = conn.execute(query).all()
        dimension = len(rows[0].vector) // 4 if rows else 0
        return (
            [UnmatchedFace(r.face_id, r.photo_id, r.cluster_id, r.state) for r in rows],
            _from_blobs([r.vector for r in rows], dimension),
        )

    def replace_unclaimed_clusters(
        self, event_id: str, model_version: str, rows: Sequence[tuple[str, str, str]], only_faces: bool = False
    ) -> None:
        """Set the unclaimed cluster rows to rows of (face_id, photo_id, cluster_id): all of the
        event's under model_version, or (only_faces) just those of the faces in rows. Claimed and
        withheld rows are never touched, and a face holding one is skipped."""
        fc = t.face_clusters
        face_ids = [face_id for face_id, _, _ in rows]
        with self._tx() as conn:
            delete = fc.delete().where(fc.c.event_id == event_id).where(fc.c.model_version == model_version)
            delete = delete.where(fc.c.state == "unclaimed")
            if only_faces:
                delete = delete.where(fc.c.face_id.in_(face_ids))
            conn.execute(delete)
            kept = {
                r.face_id
                for r in conn.execute(
                    sa.select(fc.c.face_id).where(fc.c.model_version == model_version).where(fc.c.face_id.in_(face_ids))
                )
            }
            now = _now()
            fresh = [
                dict(
                    face_id=face_id,
                    model_version=model_version,
                    event_id=event_id,
                    photo_id=photo_id,
                    cluster_id=cluster_id,
                    state="unclaimed",
                    created_at=now,
                )
                for face_id, photo_id, cluster_id in rows
                if face_id not in kept
            ]
            if fresh:
                conn.execute(fc.insert(), fresh)

    def claim_cluster_faces(
        self, model_version: str, attendee_id: str, similarity_by_face: dict[str, float]
    ) -> list[str]:
        """Mark unclaimed cluster faces as the attendee's, keeping each face's similarity to their
        selfie. Returns the ids of the photos those faces are in."""
        fc = t.face_clusters
        with self._tx() as conn:
            photo_ids: set[str] = set()
            for face_id, similarity in similarity_by_face.items():
                result = conn.execute(
                    fc.update()
                    .where(fc.c.face_id == face_id)
                    .where(fc.c.model_version == model_version)
                    .where(fc.c.state == "unclaimed")
                    .values(state="claimed", attendee_id=attendee_id, similarity=float(similarity))
                    .returning(fc.c.photo_id)
                )
                photo_ids.update(r.photo_id for r in result)
        return sorted(photo_ids)

    def claimed_faces(self, photo_id: str, model_version: str) -> list[ClaimedFace]:
        """(face_id, attendee_id, similarity) of the photo's cluster faces claimed by a guest who
        still consents and whose reference is ready."""
        fc = t.face_clusters
        query = (
            sa.select(fc.c.face_id, fc.c.attendee_id, fc.c.similarity)
            .join(t.attendees, t.attendees.c.id == fc.c.attendee_id)
            .where(fc.c.photo_id == photo_id)
            .where(fc.c.model_version == model_version)
            .where(fc.c.state == "claimed")
            .where(t.attendees.c.consent.is_(True))
            .where(t.attendees.c.reference_status == ReferenceStatus.READY.value)
            .order_by(fc.c.face_id)
        )
        with self._read() as conn:
            return [ClaimedFace(r.face_id, r.attendee_id, float(r.similarity or 0.0)) for r in conn.execute(query)]

    def withhold_faces_of(self, attendee_id: str) -> int:
        """The faces a guest was matched in (every model version) or claimed through a cluster
        leave the clusters for good: withdrawn or erased, their face is not grouped as anyone's.
        Call before the matches are deleted. Returns how many faces were withheld."""
        fc = t.face_clusters
        with self._tx() as conn:
            matched = conn.execute(
                sa.select(
                    t.matches.c.face_id, t.matches.c.model_version, t.matches.c.event_id, t.matches.c.photo_id
                ).where(t.matches.c.attendee_id == attendee_id)
            ).all()
            claimed = conn.execute(
                sa.select(fc.c.face_id, fc.c.model_version).where(fc.c.attendee_id == attendee_id)
            ).all()
            cleared = dict(state="withheld", cluster_id=None, attendee_id=None, similarity=None)
            for face_id, version in claimed:
                conn.execute(
                    fc.update().where(fc.c.face_id == face_id).where(fc.c.model_version == version).values(**cleared)
                )
            now = _now()
            for face_id, version, event_id, photo_id in matched:
                key = sa.and_(fc.c.face_id == face_id, fc.c.model_version == version)
                if conn.execute(sa.select(fc.c.face_id).where(key)).first() is None:
                    conn.execute(
                        fc.insert().values(
                            face_id=face_id,
                            model_version=version,
                            event_id=event_id,
                            photo_id=photo_id,
                            created_at=now,
                            **cleared,
                        )
                    )
                else:
                    conn.execute(fc.update().where(key).values(**cleared))
        return len({face_id for face_id, _ in claimed} | {row.face_id for row in matched})
