"""S3 object stores on moto's real HTTP server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from picsaris_pipeline.storage import S3ObjectStore


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server on loopback; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer  # a dev dependency: imported only by the tests using it

    # Port 0: the OS picks a free port, so parallel runs on one machine cannot collide.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_store_for(endpoint: str, bucket: str) -> S3ObjectStore:
    # moto cannot create buckets in region "auto", so tests use us-east-1.
    return S3ObjectStore.from_settings(
        bucket,
        endpoint_url=endpoint,
        region_name="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
    )
