"""The detector switch (YuNet by default, HOG selectable, `picsaris reembed` moving an event from one to
the other) and the face-quality gate (a face too small or blurred to match is counted, not matched),
on real faces from ../shared/faces."""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image, ImageFilter

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.domain.imaging import load_rgb
from picsaris_pipeline.faces import get_engine
from picsaris_pipeline.faces.dlib_engine import DEFAULT_MODEL, LOCAL_MODELS
from picsaris_pipeline.faces.engine import configured_versions
from picsaris_pipeline.faces.quality import MIN_MATCH_SIDE, sharpness, yaw_degrees
from picsaris_pipeline.services.face_quality import matchable_mask
from tests.support.cli_runner import found_by_name, picsaris, shown_matches, sign_up
from tests.support.db_helpers import fetch_rows

YUNET, HOG = "yunet-dlib-resnet-v1-5pt-j0", "dlib-resnet-v1-5pt-j0"


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()


def _face_width(path) -> int:
    image = load_rgb(path.read_bytes())
    return get_engine("dlib").detect(image)[0].width


def small_face_photo(path, face_px: int) -> Image.Image:
    """A group-shot-like photo: the portrait shrunk until its face is about face_px wide, on a plain
    800x600 background (the way a face at the back of a room looks)."""
    portrait = load_rgb(path.read_bytes())
    scale = face_px / _face_width(path)
    small = portrait.resize((round(portrait.width * scale), round(portrait.height * scale)), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (800, 600), (120, 130, 140))
    canvas.paste(small, (300, 200))
    return canvas


def blurred_photo(path) -> Image.Image:
    portrait = load_rgb(path.read_bytes())
    return portrait.filter(ImageFilter.GaussianBlur(_face_width(path) / 30))


# -- the detector versions ------------------------------------------------------------------------
def test_yunet_is_the_default_version_and_a_detector_change_is_a_new_version():
    assert DEFAULT_MODEL == YUNET and next(iter(LOCAL_MODELS)) == YUNET and HOG in LOCAL_MODELS
    yunet, hog = configured_versions("dlib", YUNET), configured_versions("dlib", HOG)
    assert yunet.model_version != hog.model_version
    assert yunet.detector_version.startswith("yunet") and hog.detector_version.startswith("dlib-hog")
    assert get_engine("dlib").detector_version == yunet.detector_version


def test_the_yunet_model_ships_inside_the_package_with_its_licence():
    from importlib import resources

    folder = resources.files("picsaris_pipeline.faces").joinpath("models", "yunet")
    assert folder.joinpath("yunet_n_dynamic.onnx").is_file()
    assert "Apache License" in folder.joinpath("LICENSE").read_text()
    assert "libfacedetection.train" in folder.joinpath("README.md").read_text()


def test_yunet_finds_no_face_in_the_shared_photos_without_one(shared_photos):
    engine = get_engine("dlib", YUNET)
    for name, photo in shared_photos.items():
        if photo.faces_expected == 0:
            assert engine.detect(load_rgb(photo.path.read_bytes())) == [], name


def test_yunet_finds_at_least_the_annotated_group_faces(shared_faces_dir):
    engine = get_engine("dlib", YUNET)
    with open(shared_faces_dir / "group_face_boxes.csv", newline="") as handle:
        annotated = list(csv.DictReader(handle))
    boxes = {row["file"]: engine.detect(load_rgb((shared_faces_dir / row["file"]).read_bytes())) for row in annotated}
    for row in annotated:
        cx, cy = int(row["left"]) + int(row["width"]) / 2, int(row["top"]) + int(row["height"]) / 2
        assert any(b.left <= cx <= b.right and b.top <= cy <= b.bottom for b in boxes[row["file"]]), row


def test_yunet_finds_a_20_px_face_hog_misses(shared_photos):
    image = small_face_photo(shared_photos["obama_2.jpg"].path, 20)
    assert len(get_engine("dlib", YUNET).detect(image)) == 1
    assert get_engine("dlib", HOG).detect(image) == []


# -- quality measures ---------------------------------------------------------------------------
def test_sharpness_falls_under_blur_and_yaw_follows_the_nose():
    rng = np.random.default_rng(1)
    sharp = rng.uniform(0, 255, (64, 64))
    smooth = np.asarray(Image.fromarray(sharp.astype(np.uint8)).filter(ImageFilter.GaussianBlur(4)), dtype=float)
    assert sharpness(smooth) < sharpness(sharp) / 10
    eyes = np.array([[10.0, 0.0], [20.0, 0.0], [40.0, 0.0], [50.0, 0.0]])
    assert yaw_degrees(np.vstack([eyes, [[30.0, 20.0]]])) == pytest.approx(0.0)
    assert yaw_degrees(np.vstack([eyes, [[45.0, 20.0]]])) > 30


def test_a_real_face_is_matchable_and_its_tiny_or_blurred_copies_are_not(shared_photos):
    engine = get_engine("dlib", YUNET)
    path = shared_photos["obama_2.jpg"].path
    for image, matchable, reason in [
        (load_rgb(path.read_bytes()), True, None),
        (small_face_photo(path, MIN_MATCH_SIDE - 6), False, "smaller"),
        (blurred_photo(shared_photos["obama_3.jpg"].path), False, "blurred"),
    ]:
        boxes = engine.detect(image)
        assert len(boxes) == 1, "the face is still found (and counted)"
        (quality,) = engine.quality(image, boxes) or []
        assert quality.matchable is matchable, quality
        assert (quality.reason or "").startswith(reason or ""), quality


# -- in the pipeline ---------------------------------------------------------------------------
def test_a_tiny_or_blurred_face_is_counted_but_not_matched(pipeline, event, shared_photos):
    obama = pipeline.attendee(event, "Barack Obama", shared_photos["obama_1.jpg"].path)
    assert pipeline.run_attendee(obama.id).success
    path = shared_photos["obama_2.jpg"].path
    uploads = {
        "sharp.jpg": path.read_bytes(),
        "tiny.jpg": _jpeg(small_face_photo(path, MIN_MATCH_SIDE - 6)),
        # Another photo: a blurred copy of the sharp one would be held as its near-duplicate.
        "blurred.jpg": _jpeg(blurred_photo(shared_photos["obama_3.jpg"].path)),
    }
    seen = {}
    for name, data in uploads.items():
        photo = pipeline.upload(event, obama, data, name)
        assert pipeline.run_photo(photo.id).success
        photo = pipeline.repo.get_photo(photo.id)
        matches = pipeline.repo.list_matches(event.id, photo_id=photo.id)
        faces = pipeline.repo.get_faces(photo.id)
        mask = matchable_mask(pipeline.repo, [f.id for f in faces])
        seen[name] = (photo.face_count, len(matches), mask.tolist())
    assert seen == {
        "sharp.jpg": (1, 1, [True]),
        "tiny.jpg": (1, 0, [False]),
        "blurred.jpg": (1, 0, [False]),
    }


def test_reembed_moves_an_event_from_hog_to_yunet_without_mixing(picsaris_home, shared_photos, monkeypatch):
    selfies = {"Barack Obama": ("obama_1.jpg", True), "Joe Biden": ("biden_2.jpg", True)}
    uploads = ["obama_2.jpg", "group_two_people.jpg", "noface_dog.jpg"]
    monkeypatch.setenv("PICSARIS_FACE_MODEL", HOG)
    event_id = picsaris("event", "create", "Detector switch").strip()
    attendees = sign_up(event_id, selfies, shared_photos)
    picsaris("upload", event_id, "--uploader", attendees["Joe Biden"], *[str(shared_photos[n].path) for n in uploads])
    picsaris("process")
    under_hog = shown_matches(event_id)
    assert {row["model_version"] for row in under_hog} == {HOG}

    monkeypatch.delenv("PICSARIS_FACE_MODEL")  # the default: YuNet
    picsaris("reembed", "--event", event_id)
    under_yunet = shown_matches(event_id)
    assert {row["model_version"] for row in under_yunet} == {YUNET}
    assert found_by_name(under_yunet) == found_by_name(under_hog)

    from picsaris_pipeline.orchestration.app import App
    from picsaris_pipeline.services import health

    app = App.from_env()
    assert app.repo.get_event(event_id).active_model_version == YUNET
    assert health.version_mixing(app.repo).passed
    query = (
        sa.select(t.face_vectors.c.model_version, t.faces.c.detector_version)
        .join(t.faces, t.faces.c.id == t.face_vectors.c.face_id)
        .where(t.face_vectors.c.event_id == event_id)
        .distinct()
    )
    pairs = set(fetch_rows(app.repo, query))
    # Each version's vectors lie on its own detector's faces only.
    assert pairs == {
        (HOG, configured_versions("dlib", HOG).detector_version),
        (YUNET, configured_versions("dlib", YUNET).detector_version),
    }

    picsaris("event", "prune", event_id)
    assert set(app.repo.model_versions_in_use(event_id)) == {YUNET}
    assert {f.detector_version for p in app.repo.list_photos(event_id) for f in app.repo.get_faces(p.id)} == {
        configured_versions("dlib", YUNET).detector_version
    }
    assert os.environ.get("PICSARIS_FACE_MODEL") is None
