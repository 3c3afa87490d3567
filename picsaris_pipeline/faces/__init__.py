"""Face engines: detect faces and describe them under a named, versioned model."""

from picsaris_pipeline.faces.engine import FaceBox, FaceEngine, get_engine, model_versions

__all__ = ["FaceBox", "FaceEngine", "get_engine", "model_versions"]
