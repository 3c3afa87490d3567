"""The local face engine on real photos (../shared/faces): detection counts and identity matching,
under both detectors (YuNet, the default, and dlib's HOG)."""

from itertools import combinations

import numpy as np
import pytest

from picsaris_pipeline.domain.imaging import decode_photo, encode_jpeg, load_rgb
from picsaris_pipeline.domain.matching import DEFAULT_MIN_SIMILARITY, similarities
from picsaris_pipeline.errors import ConfigurationError
from picsaris_pipeline.faces import get_engine, model_versions
from picsaris_pipeline.faces.dlib_engine import DEFAULT_MODEL, LOCAL_MODELS

YUNET, HOG = "yunet-dlib-resnet-v1-5pt-j0", "dlib-resnet-v1-5pt-j0"


@pytest.fixture(scope="module", params=[YUNET, HOG])
def engine(request):
    return get_engine("dlib", request.param)


def verified(data: bytes):
    """The image the pipeline's face steps see: decoded, then stored and read back as the verified JPEG."""
    return load_rgb(encode_jpeg(decode_photo(data).image))


@pytest.fixture(scope="module")
def described(shared_photos, engine):
    """Every shared photo verified, its faces detected and described once for the module."""
    result = {}
    for name, photo in shared_photos.items():
        image = verified(photo.path.read_bytes())
        boxes = engine.detect(image)
        result[name] = (image, boxes, engine.embed(image, boxes))
    return result


def test_engine_offers_two_versions_default_first():
    assert model_versions("dlib") == list(LOCAL_MODELS)
    assert len(LOCAL_MODELS) >= 2 and model_versions("dlib")[0] == DEFAULT_MODEL


def test_unknown_model_version_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="unknown face model"):
        get_engine("dlib", "resnet-from-the-future")


def test_versions_name_the_model_and_its_settings(engine):
    assert "dlib-resnet-v1-5pt" in engine.model_version
    detector = "yunet-n-max1600" if engine.model_version.startswith("yunet") else "dlib-hog-v1-max1200"
    assert engine.detector_version.startswith(detector)


def test_yunet_is_the_default_and_hog_stays_selectable():
    assert DEFAULT_MODEL == YUNET and get_engine("dlib").detector_version.startswith("yunet")
    assert get_engine("dlib", HOG).detector_version.startswith("dlib-hog")


def test_face_counts_match_the_manifest(shared_photos, described):
    wrong = {
        name: (photo.faces_expected, len(described[name][1]))
        for name, photo in shared_photos.items()
        if len(described[name][1]) != photo.faces_expected
    }
    assert not wrong, f"expected vs found: {wrong}"


def test_boxes_lie_inside_the_full_size_image(described):
    for image, boxes, _ in described.values():
        for box in boxes:
            assert 0 <= box.left < box.right <= image.width and 0 <= box.top < box.bottom <= image.height


def test_group_boxes_agree_with_the_annotations(shared_faces_dir, described):
    import csv

    with open(shared_faces_dir / "group_face_boxes.csv", newline="") as handle:
        annotated = list(csv.DictReader(handle))
    for row in annotated:
        cx, cy = int(row["left"]) + int(row["width"]) / 2, int(row["top"]) + int(row["height"]) / 2
        boxes = described[row["file"]][1]
        assert any(b.left <= cx <= b.right and b.top <= cy <= b.bottom for b in boxes), row


def test_vectors_are_128_d_and_finite(described):
    for _, boxes, vectors in described.values():
        assert vectors.shape == (len(boxes), 128) and vectors.dtype == np.float32
        assert np.isfinite(vectors).all()


# Same-person pairs the candidate bar misses, by model version: measured, and counted as misses in
# docs/QUALITY.md. With YuNet's boxes, the small, soft alex_lacamoire_1.png scores 0.466-0.470
# against his other two photos (0.48 with HOG's boxes), just under the candidate bar of 0.47.
KNOWN_MISSES = {"yunet-dlib-resnet-v1-5pt-j0": {"alex_lacamoire_1.png"}}


def test_same_person_matches_and_different_people_do_not(shared_photos, described, engine):
    # The match policy's confident bar (DEFAULT_MIN_SIMILARITY, tuned for 400 guests) is stricter
    # than these 7 people need: a same-person pair may fall between it and the candidate bar (then it
    # is proposed to the guest); different people always stay under the candidate bar.
    from picsaris_pipeline.domain.match_policy import DEFAULT_POLICY

    singles = {n: p for n, p in shared_photos.items() if p.person and p.faces_expected == 1}
    misses = KNOWN_MISSES.get(engine.model_version, set())
    errors, missed = [], []
    for a, b in combinations(sorted(singles), 2):
        score = float(similarities(described[a][2], described[b][2])[0, 0])
        same = singles[a].person == singles[b].person
        if not same and score >= DEFAULT_POLICY.candidate_similarity:
            errors.append((a, b, round(score, 3)))  # a stranger proposed: never
        elif same and score < DEFAULT_POLICY.candidate_similarity:
            (missed if {a, b} & misses else errors).append((a, b, round(score, 3)))
    assert not errors, errors
    assert all(score >= DEFAULT_POLICY.candidate_similarity - 0.01 for *_, score in missed), missed
    assert DEFAULT_POLICY.candidate_similarity <= DEFAULT_MIN_SIMILARITY


def test_nobody_is_found_in_photos_without_faces(shared_photos, described):
    for name, _photo in shared_photos.items():
        if name.startswith("noface"):
            assert described[name][1] == []


def test_the_two_versions_make_different_vectors_of_the_same_face(shared_photos):
    image = verified(shared_photos["obama_1.jpg"].path.read_bytes())
    first, second = get_engine("dlib", HOG), get_engine("dlib", "dlib-resnet-v1-5pt-j4")
    boxes = first.detect(image)
    a, b = first.embed(image, boxes), second.embed(image, boxes)
    assert not np.allclose(a, b), "distinct versions must not produce identical vectors"
    assert float(similarities(a, b)[0, 0]) > 0.8, "both still describe the same face"


def test_embedding_is_deterministic_without_jitter(shared_photos, engine):
    image = verified(shared_photos["biden_1.jpg"].path.read_bytes())
    boxes = engine.detect(image)
    assert np.allclose(engine.embed(image, boxes), engine.embed(image, boxes))
