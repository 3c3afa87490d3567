"""The one registry of face engines: configuration names an engine (`PICSARIS_FACE_ENGINE`), and
everything else (its model versions, its versions' strings, its process-wide instance) comes from
the engine class registered under that name."""

from __future__ import annotations

from picsaris_pipeline.errors import ConfigurationError
from picsaris_pipeline.faces.dlib_engine import DlibEngine
from picsaris_pipeline.faces.engine import FaceEngine
from picsaris_pipeline.faces.rekognition import RekognitionEngine

# The embedded default first. Importing an engine's module loads no model and builds no client.
ENGINES: dict[str, type[FaceEngine]] = {engine.name: engine for engine in (DlibEngine, RekognitionEngine)}
DEFAULT_ENGINE = next(iter(ENGINES))


def engine_class(name: str) -> type[FaceEngine]:
    """The engine registered under `name`; ConfigurationError naming the ones offered otherwise."""
    if name not in ENGINES:
        raise ConfigurationError(f"unknown face engine {name!r}; this build offers: {', '.join(ENGINES)}")
    return ENGINES[name]
