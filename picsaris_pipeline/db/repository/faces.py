"""Detected faces, their vectors and their quality (faces/quality.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository.base import RepositoryBase, _from_blobs, _now, _replace_rows, _to_blob
from picsaris_pipeline.db.repository.rows import FaceVectors
from picsaris_pipeline.domain.ids import new_id
from picsaris_pipeline.domain.model import Face, Photo
from picsaris_pipeline.faces.engine import FaceBox
from picsaris_pipeline.faces.quality import FaceQuality


class FacesRepository(RepositoryBase):
    def replace_faces(self, photo: Photo, detector_version: str, boxes: Sequence[FaceBox]) -> list[Face]:
        """Store a photo's detected faces; a re-run that finds the same boxes keeps the rows (and so
        the vectors and matches hanging off them), a different result replaces them."""
        existing = self.get_faces(photo.id, detector_version)
        same = [(f.left, f.top, f.right, f.bottom) for f in existing] == [
            (b.left, b.top, b.right, b.bottom) for b in boxes
        ]
        if same:
            return existing
        now = _now()
        rows = [
            dict(
                id=new_id(),
                event_id=photo.event_id,
                face_index=i,
                left=b.left,
                top=b.top,
                right=b.right,
                bottom=b.bottom,
                score=b.score,
                created_at=now,
            )
            for i, b in enumerate(boxes)
        ]
        with self._tx() as conn:
            _replace_rows(conn, t.faces, {"photo_id": photo.id, "detector_version": detector_version}, rows)
        return self.get_faces(photo.id, detector_version)

    def get_faces(self, photo_id: str, detector_version: str | None = None) -> list[Face]:
        query = sa.select(t.faces).where(t.faces.c.photo_id == photo_id).order_by(t.faces.c.face_index)
        if detector_version is not None:
            query = query.where(t.faces.c.detector_version == detector_version)
        with self._read() as conn:
            return [
                Face(r.id, r.photo_id, r.face_index, r.detector_version, r.left, r.top, r.right, r.bottom, r.score)
                for r in conn.execute(query).all()
            ]

    def store_face_vectors(self, photo: Photo, faces: Sequence[Face], model_version: str, vectors: np.ndarray) -> None:
        if len(faces) != len(vectors):
            raise ValueError("one vector per face")
        rows = [
            dict(face_id=f.id, dimension=int(v.shape[-1]), vector=_to_blob(v))
            for f, v in zip(faces, vectors, strict=True)
        ]
        self._replace_photo_rows(t.face_vectors, photo, model_version, rows)

    def photo_vectors(self, photo_id: str, model_version: str) -> FaceVectors:
        query = (
            sa.select(t.face_vectors.c.face_id.label("owner"), t.face_vectors.c.vector, t.face_vectors.c.dimension)
            .join(t.faces, t.faces.c.id == t.face_vectors.c.face_id)
            .where(t.face_vectors.c.photo_id == photo_id)
            .where(t.face_vectors.c.model_version == model_version)
            .order_by(t.faces.c.face_index)
        )
        return FaceVectors(*self._owned_vectors(query))

    def event_face_vectors(self, event_id: str, model_version: str) -> FaceVectors:
        """(photo id per face, vectors) for every face of an event under one model version.
        Read as plain tuples and joined into one buffer: a late joiner reads all 36,000 faces of a
        large event, and row objects cost more than the matching itself (bench/matching.py)."""
        query = (
            sa.select(t.face_vectors.c.photo_id, t.face_vectors.c.vector)
            .where(t.face_vectors.c.event_id == event_id)
            .where(t.face_vectors.c.model_version == model_version)
        )
        owners: list[str] = []
        blobs: list[bytes] = []
        with self._read() as conn:
            for photo_id, vector in conn.execute(query).tuples():
                owners.append(photo_id)
                blobs.append(vector)
        dimension = len(blobs[0]) // 4 if blobs else 0
        return FaceVectors(owners, _from_blobs(blobs, dimension))

    def _replace_photo_rows(
        self, table: sa.Table, photo: Photo, model_version: str, rows: Sequence[dict[str, Any]]
    ) -> None:
        """Replace what an earlier run stored for the photo under the model version (per-face rows of
        face_vectors or engine_faces) with `rows`, in one transaction."""
        common = dict(event_id=photo.event_id, created_at=_now())
        with self._tx() as conn:
            _replace_rows(
                conn, table, {"photo_id": photo.id, "model_version": model_version}, [{**common, **r} for r in rows]
            )

    def store_face_quality(self, faces: Sequence[Face], qualities: Sequence[FaceQuality]) -> None:
        """Record each face's quality, replacing what an earlier run of the same faces recorded."""
        if len(faces) != len(qualities):
            raise ValueError("one quality per face")
        if not faces:
            return
        with self._tx() as conn:
            conn.execute(t.face_quality.delete().where(t.face_quality.c.face_id.in_([f.id for f in faces])))
            conn.execute(
                t.face_quality.insert(),
                [
                    dict(
                        face_id=f.id,
                        photo_id=f.photo_id,
                        size_px=q.size_px,
                        sharpness=q.sharpness,
                        yaw_degrees=q.yaw_degrees,
                        matchable=q.matchable,
                        reason=q.reason,
                    )
                    for f, q in zip(faces, qualities, strict=True)
                ],
            )

    def unmatchable_face_ids(self, face_ids: Sequence[str]) -> set[str]:
        """The faces among these whose quality forbids matching (no row: matchable)."""
        if not face_ids:
            return set()
        query = (
            sa.select(t.face_quality.c.face_id)
            .where(t.face_quality.c.face_id.in_(list(face_ids)))
            .where(t.face_quality.c.matchable.is_(False))
        )
        with self._read() as conn:
            return {r.face_id for r in conn.execute(query).all()}
