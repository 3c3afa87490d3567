"""Builds the configured parts once for a command-line invocation (the same resources the
Dagster runs use, so the CLI and the pipeline always agree on configuration)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import dagster as dg

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.faces.engine import FaceEngine
from picsaris_pipeline.orchestration.resources import (
    DatabaseResource,
    FaceEngineResource,
    ObjectStoreResource,
    RealtimeResource,
)
from picsaris_pipeline.orchestration.runner import dagster_instance
from picsaris_pipeline.realtime import RealtimePublisher
from picsaris_pipeline.settings import Settings
from picsaris_pipeline.storage import ObjectStore


@dataclass
class App:
    settings: Settings

    @functools.cached_property
    def repo(self) -> Repository:
        return DatabaseResource().with_settings(self.settings).repository()

    @functools.cached_property
    def store(self) -> ObjectStore:
        return ObjectStoreResource().with_settings(self.settings).store()

    @functools.cached_property
    def face_engine(self) -> FaceEngineResource:
        return FaceEngineResource().with_settings(self.settings)

    def publisher(self) -> RealtimePublisher:
        return RealtimeResource().with_settings(self.settings).publisher()

    @functools.cached_property
    def engine(self) -> FaceEngine:
        return self.face_engine.get()

    def shown_version(self, event_id: str) -> str:
        """The model version whose matches guests of this event see (its active version)."""
        from picsaris_pipeline.services.versions import active_version

        return active_version(self.repo.get_event(event_id), self.engine.model_version)

    @functools.cached_property
    def instance(self) -> dg.DagsterInstance:
        return dagster_instance(self.settings)

    @classmethod
    def from_env(cls) -> App:
        settings = Settings.from_env()
        settings.home.mkdir(parents=True, exist_ok=True)
        return cls(settings)
