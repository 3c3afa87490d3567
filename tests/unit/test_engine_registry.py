"""One registry names the face engines; each engine kind is a strategy the services call."""

import pytest

from picsaris_pipeline.errors import ConfigurationError
from picsaris_pipeline.faces import get_engine, model_versions
from picsaris_pipeline.faces.dlib_engine import DEFAULT_MODEL, LOCAL_MODELS, DlibEngine
from picsaris_pipeline.faces.engine import configured_versions
from picsaris_pipeline.faces.registry import DEFAULT_ENGINE, ENGINES, engine_class
from picsaris_pipeline.faces.rekognition import KNOWN_MODELS, RekognitionEngine, detector_version_for
from picsaris_pipeline.orchestration.jobs import reembed_assets
from picsaris_pipeline.services.collection_strategy import CollectionStrategy
from picsaris_pipeline.services.engine_strategy import strategy_for
from picsaris_pipeline.services.policy_matching import collection_policy_id, policy_for
from picsaris_pipeline.services.vector_strategy import VectorStrategy
from picsaris_pipeline.settings import Settings


def test_the_registry_offers_dlib_first_then_rekognition():
    assert list(ENGINES) == ["dlib", "rekognition"]
    assert DEFAULT_ENGINE == "dlib"
    assert engine_class("dlib") is DlibEngine and engine_class("rekognition") is RekognitionEngine


def test_an_unknown_engine_is_a_configuration_error_everywhere_it_is_named(tmp_path):
    for named in (engine_class, model_versions, configured_versions, get_engine, reembed_assets):
        with pytest.raises(ConfigurationError, match="this build offers: dlib, rekognition"):
            named("deepface")
    with pytest.raises(ConfigurationError, match="PICSARIS_FACE_ENGINE must be dlib or rekognition, got 'deepface'"):
        Settings.from_env({"PICSARIS_HOME": str(tmp_path), "PICSARIS_FACE_ENGINE": "deepface"})


def test_each_engine_offers_its_model_versions_with_the_default_first():
    assert model_versions("dlib") == list(LOCAL_MODELS) and model_versions("dlib")[0] == DEFAULT_MODEL
    assert model_versions("rekognition") == list(KNOWN_MODELS)


def test_versions_are_known_without_loading_a_model_or_a_client():
    dlib = configured_versions("dlib")
    assert (dlib.engine, dlib.model_version) == ("dlib", DEFAULT_MODEL)
    assert dlib.detector_version == LOCAL_MODELS[DEFAULT_MODEL].detector_version
    eight = configured_versions("rekognition", "rekognition-8.0")
    assert (eight.engine, eight.detector_version) == ("rekognition", detector_version_for("rekognition-8.0"))
    with pytest.raises(ConfigurationError, match="for engine dlib"):
        configured_versions("dlib", "resnet-from-the-future")
    with pytest.raises(ConfigurationError, match="for engine rekognition"):
        configured_versions("rekognition", "resnet-from-the-future")


def test_the_engines_kind_picks_its_strategy():
    dlib = get_engine("dlib")
    rekognition = RekognitionEngine(client=None)  # no call is made: only the strategy is chosen
    assert isinstance(strategy_for(dlib), VectorStrategy) and strategy_for(dlib).engine is dlib
    assert isinstance(strategy_for(rekognition), CollectionStrategy)
    assert isinstance(strategy_for(None), VectorStrategy)  # matching over our own vectors needs no engine


def test_only_a_vector_engine_stores_vectors_of_a_dimension():
    assert get_engine("dlib").vector_dimensions() == {DEFAULT_MODEL: 128}
    assert RekognitionEngine(client=None).vector_dimensions() == {}


def test_each_strategy_names_the_policy_it_matches_under():
    assert strategy_for(None).policy_id(0.5) == policy_for(0.5).id
    assert strategy_for(RekognitionEngine(client=None)).policy_id(0.8) == collection_policy_id(0.8)


def test_a_collection_strategy_matches_under_its_own_version_only():
    strategy = strategy_for(RekognitionEngine(client=None, model_version="rekognition-7.0"))
    assert strategy.serving("rekognition-7.0") is strategy
    assert strategy.serving("rekognition-8.0") is None
    vectors = strategy_for(None)
    assert vectors.serving("any-version") is vectors  # vectors of every version are ours to match


def test_a_vector_strategy_without_an_engine_refuses_face_work(shared_photos):
    from picsaris_pipeline.domain import imaging

    selfie = next(photo for photo in shared_photos.values() if photo.faces_expected == 1)
    image = imaging.decode_photo(selfie.path.read_bytes()).image
    with pytest.raises(ConfigurationError, match="needs a face engine"):
        strategy_for(None).selfie_faces(image)
    assert strategy_for(RekognitionEngine(client=None)).selfie_faces(image) is None  # no local detector
    assert len(strategy_for(get_engine("dlib")).selfie_faces(image) or []) >= 1  # found locally
