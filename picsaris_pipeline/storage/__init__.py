"""Object storage: one interface, a local-directory store and an S3/R2 store."""

from picsaris_pipeline.storage.base import (
    ObjectInfo,
    ObjectStore,
    UploadTicket,
    put_via_ticket,
    validate_key,
)
from picsaris_pipeline.storage.local import LocalObjectStore
from picsaris_pipeline.storage.s3 import S3ObjectStore

__all__ = [
    "LocalObjectStore",
    "ObjectInfo",
    "ObjectStore",
    "S3ObjectStore",
    "UploadTicket",
    "put_via_ticket",
    "validate_key",
]
