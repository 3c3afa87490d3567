"""One behaviour per test, run against the local store and against S3 on moto's HTTP server."""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from picsaris_pipeline.errors import (
    BadInputError,
    ConfigurationError,
    NotFoundError,
    RetryableError,
)
from picsaris_pipeline.storage import (
    LocalObjectStore,
    ObjectStore,
    S3ObjectStore,
    UploadTicket,
    put_via_ticket,
    validate_key,
)

JPEG_BYTES = b"\xff\xd8\xff\xe0 not really a jpeg \xff\xd9"

# ---------------------------------------------------------------- both stores


def test_put_then_get_returns_the_same_bytes(store: ObjectStore) -> None:
    store.put("events/e1/photos/u1/p1.jpg", JPEG_BYTES, "image/jpeg")

    assert store.get("events/e1/photos/u1/p1.jpg") == JPEG_BYTES


def test_put_replaces_an_existing_object(store: ObjectStore) -> None:
    store.put("k", b"first")
    store.put("k", b"second")

    assert store.get("k") == b"second"


def test_head_reports_size_and_utc_last_modified(store: ObjectStore) -> None:
    store.put("a/b.bin", b"12345")

    info = store.head("a/b.bin")

    assert info is not None
    assert (info.key, info.size) == ("a/b.bin", 5)
    assert info.last_modified.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - info.last_modified) < timedelta(minutes=1)


def test_get_of_a_missing_key_raises_not_found(store: ObjectStore) -> None:
    with pytest.raises(NotFoundError):
        store.get("nope")


def test_head_of_a_missing_key_returns_none(store: ObjectStore) -> None:
    assert store.head("nope") is None


def test_a_prefix_of_other_keys_is_not_an_object(store: ObjectStore) -> None:
    store.put("folder/file", b"x")

    assert store.head("folder") is None
    with pytest.raises(NotFoundError):
        store.get("folder")


def test_delete_removes_the_object(store: ObjectStore) -> None:
    store.put("k", b"x")

    store.delete("k")

    assert store.head("k") is None


def test_delete_of_a_missing_key_is_a_no_op(store: ObjectStore) -> None:
    store.put("k", b"x")
    store.delete("k")

    store.delete("k")
    store.delete("never-existed/at/all")


def test_list_yields_keys_in_lexicographic_order(store: ObjectStore) -> None:
    # "a-c" < "a/b" < "a0" by byte value: a directory walk must not list "a/..." first.
    keys = ["b", "a0", "a/b", "a-c", "a/a/z", "A", "é", "a~"]
    for key in keys:
        store.put(key, key.encode())

    assert [info.key for info in store.list()] == sorted(keys)


def test_list_yields_sizes(store: ObjectStore) -> None:
    store.put("x/1", b"1")
    store.put("x/22", b"22")

    assert [(info.key, info.size) for info in store.list("x/")] == [
        ("x/1", 1),
        ("x/22", 2),
    ]


def test_list_only_yields_keys_with_the_prefix(store: ObjectStore) -> None:
    for key in ["ev/1/a", "ev/1/b", "ev/10/a", "ev/2/a", "other"]:
        store.put(key, b"x")

    assert [info.key for info in store.list("ev/1")] == ["ev/1/a", "ev/1/b", "ev/10/a"]
    assert [info.key for info in store.list("ev/1/")] == ["ev/1/a", "ev/1/b"]


def test_list_starts_strictly_after_start_after(store: ObjectStore) -> None:
    for key in ["a/1", "a/2", "b/1", "b/2", "c"]:
        store.put(key, b"x")

    assert [info.key for info in store.list(start_after="a/2")] == ["b/1", "b/2", "c"]
    assert [info.key for info in store.list(start_after="b")] == ["b/1", "b/2", "c"]
    assert [info.key for info in store.list(prefix="b/", start_after="b/1")] == ["b/2"]


def test_list_with_a_small_page_size_yields_every_key_in_order(
    store: ObjectStore,
) -> None:
    keys = [f"p/{i:03d}" for i in range(25)]
    for key in reversed(keys):
        store.put(key, b"x")

    assert [info.key for info in store.list("p/", page_size=7)] == keys


def test_list_rejects_a_page_size_s3_cannot_serve(store: ObjectStore) -> None:
    with pytest.raises(BadInputError):
        store.list(page_size=1001)


def test_delete_prefix_deletes_matching_keys_and_counts_them(
    store: ObjectStore,
) -> None:
    for key in ["d/1", "d/2/x", "d/3", "dd", "e"]:
        store.put(key, b"x")

    deleted = store.delete_prefix("d/")

    assert deleted == 3
    assert [info.key for info in store.list()] == ["dd", "e"]


def test_delete_prefix_refuses_an_empty_prefix(store: ObjectStore) -> None:
    store.put("k", b"x")

    with pytest.raises(BadInputError):
        store.delete_prefix("")
    assert store.head("k") is not None


BAD_KEYS = [
    "../x",
    "/abs",
    "a//b",
    "a/./b",
    "a/..",
    "",
    "a\\b",
    "a\x00b",
    "a\nb",
    "k" * 1025,
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_every_key_taking_method_rejects_an_invalid_key(store: ObjectStore, key: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.head(key),
        lambda: store.delete(key),
        lambda: store.presign_put(key, "image/jpeg"),
    ]
    for call in calls:
        with pytest.raises(BadInputError):
            call()


def test_validate_key_accepts_and_returns_a_contract_key() -> None:
    key = "events/01J/photos/01K/01M.jpg"

    assert validate_key(key) == key


def test_bytes_put_with_a_presigned_ticket_can_be_read_back(store: ObjectStore) -> None:
    ticket = store.presign_put("events/e/photos/u/p.jpg", "image/jpeg")

    put_via_ticket(ticket, JPEG_BYTES)

    assert store.get("events/e/photos/u/p.jpg") == JPEG_BYTES


def test_presigned_ticket_names_method_content_type_and_expiry(
    store: ObjectStore,
) -> None:
    before = datetime.now(UTC)

    ticket = store.presign_put("k.jpg", "image/jpeg", expires_in=600)

    assert (ticket.key, ticket.method) == ("k.jpg", "PUT")
    assert ticket.headers == {"Content-Type": "image/jpeg"}
    assert before + timedelta(seconds=600) <= ticket.expires_at
    assert ticket.expires_at <= datetime.now(UTC) + timedelta(seconds=600)


# ---------------------------------------------------------------- S3 only


def test_s3_list_fetches_one_request_per_page(s3_store: S3ObjectStore) -> None:
    for i in range(25):
        s3_store.put(f"p/{i:03d}", b"x")
    requests: list[dict[str, Any]] = []
    s3_store.client.meta.events.register("before-call.s3.ListObjectsV2", lambda params, **_: requests.append(params))

    keys = [info.key for info in s3_store.list("p/", page_size=7)]

    assert len(keys) == 25
    assert len(requests) == 4  # 7 + 7 + 7 + 4
    assert all(request["query_string"]["max-keys"] == 7 for request in requests)


def test_s3_list_does_not_fetch_pages_nobody_reads(s3_store: S3ObjectStore) -> None:
    for i in range(25):
        s3_store.put(f"p/{i:03d}", b"x")
    requests: list[dict[str, Any]] = []
    s3_store.client.meta.events.register("before-call.s3.ListObjectsV2", lambda params, **_: requests.append(params))

    first = next(iter(s3_store.list("p/", page_size=7)))

    assert first.key == "p/000"
    assert len(requests) == 1


def test_s3_delete_prefix_deletes_more_than_one_batch(s3_store: S3ObjectStore) -> None:
    keys = [f"big/{i:04d}" for i in range(1001)]
    with ThreadPoolExecutor(max_workers=16) as pool:  # boto3 clients are thread-safe
        list(pool.map(lambda key: s3_store.put(key, b"x"), keys))
    batches: list[int] = []
    s3_store.client.meta.events.register(
        "before-call.s3.DeleteObjects",
        lambda params, **_: batches.append(params["body"].count(b"<Key>")),
    )

    deleted = s3_store.delete_prefix("big/")

    assert deleted == 1001
    assert batches == [1000, 1]
    assert list(s3_store.list("big/")) == []


def test_s3_put_to_a_missing_bucket_raises_configuration_error(
    missing_bucket_store: S3ObjectStore,
) -> None:
    with pytest.raises(ConfigurationError, match="NoSuchBucket"):
        missing_bucket_store.put("k", b"x")


def test_s3_unreachable_endpoint_raises_retryable_error() -> None:
    # One attempt and short timeouts: the behaviour is the translation, not botocore's backoff.
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=2),
    )
    store = S3ObjectStore("bucket", client)

    with pytest.raises(RetryableError):
        store.get("k")


def test_s3_ticket_rejected_by_the_server_raises_bad_input(
    missing_bucket_store: S3ObjectStore,
) -> None:
    ticket = missing_bucket_store.presign_put("k.jpg", "image/jpeg")

    with pytest.raises(BadInputError, match=r"(?s)HTTP 404.*NoSuchBucket"):
        put_via_ticket(ticket, JPEG_BYTES)


def test_s3_describe_names_bucket_and_endpoint_without_credentials(s3_store: S3ObjectStore, moto_endpoint: str) -> None:
    description = s3_store.describe()

    assert description == f"s3://{s3_store.bucket} @ {moto_endpoint}"
    assert "testing" not in description


def test_s3_region_auto_without_an_endpoint_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        S3ObjectStore.from_settings("bucket", region_name="auto")


# ---------------------------------------------------------------- local only


def test_local_ticket_is_a_file_url_under_the_root(
    local_store: LocalObjectStore,
) -> None:
    ticket = local_store.presign_put("a/b.jpg", "image/jpeg")

    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(ticket.url).path))
    assert ticket.url.startswith("file://")
    assert path == local_store.root / "a" / "b.jpg"


def test_local_ticket_cannot_be_issued_through_a_symlink_out_of_root(
    local_store: LocalObjectStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (local_store.root / "escape").symlink_to(outside)

    with pytest.raises(BadInputError, match="outside the store root"):
        local_store.presign_put("escape/x.jpg", "image/jpeg")
    with pytest.raises(BadInputError):
        local_store.put("escape/x.jpg", b"x")
    assert list(outside.iterdir()) == []


def test_local_expired_ticket_is_refused(local_store: LocalObjectStore) -> None:
    ticket = local_store.presign_put("k.jpg", "image/jpeg", expires_in=1)
    expired = UploadTicket(
        ticket.key,
        ticket.url,
        ticket.method,
        ticket.headers,
        datetime.now(UTC) - timedelta(1),
    )

    with pytest.raises(BadInputError, match="expired"):
        put_via_ticket(expired, b"x")
    assert local_store.head("k.jpg") is None


def test_local_list_skips_unfinished_temp_files(local_store: LocalObjectStore) -> None:
    local_store.put("a/done", b"x")
    (local_store.root / "a" / ".picsaris-tmp-half-written").write_bytes(b"partial")

    assert [info.key for info in local_store.list()] == ["a/done"]


def test_local_key_cannot_be_both_object_and_folder(
    local_store: LocalObjectStore,
) -> None:
    local_store.put("a", b"x")

    with pytest.raises(BadInputError):
        local_store.put("a/b", b"y")


# ---------------------------------------------------------------- put_via_ticket over HTTP


@pytest.fixture
def answering_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """A local HTTP server that answers every PUT with the status in request.param."""
    status: int = request.param

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = f"<Error>status {status}</Error>".encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep pytest output clean

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/bucket/key?X-Amz-Signature=secret"
    server.shutdown()
    server.server_close()
    thread.join()


def _ticket(url: str) -> UploadTicket:
    expires_at = datetime.now(UTC) + timedelta(minutes=5)
    return UploadTicket("key", url, "PUT", {"Content-Type": "image/jpeg"}, expires_at)


@pytest.mark.parametrize(
    ("answering_server", "error"),
    [
        (503, RetryableError),
        (500, RetryableError),
        (429, RetryableError),
        (403, BadInputError),
    ],
    indirect=["answering_server"],
)
def test_put_via_ticket_maps_http_status_to_error_kind(answering_server: str, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"HTTP \d{3}: <Error>status"):
        put_via_ticket(_ticket(answering_server), b"x")


@pytest.mark.parametrize("answering_server", [403], indirect=True)
def test_put_via_ticket_error_does_not_reveal_the_url_signature(
    answering_server: str,
) -> None:
    with pytest.raises(BadInputError) as raised:
        put_via_ticket(_ticket(answering_server), b"x")

    assert "/bucket/key" in str(raised.value)
    assert "secret" not in str(raised.value)


def test_put_via_ticket_connection_refused_is_retryable() -> None:
    with pytest.raises(RetryableError):
        put_via_ticket(_ticket(f"http://127.0.0.1:{_closed_port()}/b/k"), b"x")


def _closed_port() -> int:
    # Bind then close: nothing listens on the port for the rest of the test.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_link_opens_the_object(store):
    import urllib.request

    store.put("events/link/a.jpg", b"picture")
    url = store.link("events/link/a.jpg", expires_in=60)
    with urllib.request.urlopen(url, timeout=10) as response:  # file:// locally, a presigned GET on S3
        assert response.read() == b"picture"
