"""S3 object stores on moto's real HTTP server."""

from __future__ import annotations

from picsaris_pipeline.storage import S3ObjectStore


def s3_store_for(endpoint: str, bucket: str) -> S3ObjectStore:
    # moto cannot create buckets in region "auto", so tests use us-east-1.
    return S3ObjectStore.from_settings(
        bucket,
        endpoint_url=endpoint,
        region_name="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
    )
