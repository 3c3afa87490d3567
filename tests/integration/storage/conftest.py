"""Stores for the shared behaviour tests: a local directory, and S3 on moto's real HTTP server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from picsaris_pipeline.storage import LocalObjectStore, ObjectStore, S3ObjectStore
from tests.support.object_stores import moto_server, s3_store_for


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_store(moto_endpoint: str) -> S3ObjectStore:
    # A bucket per test keeps tests independent although moto's state lives for the session.
    store = s3_store_for(moto_endpoint, f"test-{uuid.uuid4().hex}")
    store.client.create_bucket(Bucket=store.bucket)
    return store


@pytest.fixture
def missing_bucket_store(moto_endpoint: str) -> S3ObjectStore:
    return s3_store_for(moto_endpoint, f"never-created-{uuid.uuid4().hex}")


@pytest.fixture
def local_store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "bucket")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    # getfixturevalue, so runs that select only local tests never start moto.
    fixture: ObjectStore = request.getfixturevalue(f"{request.param}_store")
    return fixture
