"""Production realtime publishers: Supabase's REST broadcast against a local server speaking its
contract (tests/support/supabase_server.py), pg_notify heard by a real LISTEN on the machine's PostgreSQL,
and the outbox delivering through them once, whatever fails on the way."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from picsaris_pipeline.db.repository import Repository, connect, unshared
from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.errors import BadInputError, ConfigurationError, PicsarisError, RetryableError
from picsaris_pipeline.faces.engine import FaceBox
from picsaris_pipeline.realtime import (
    NOTIFY_PAYLOAD_LIMIT,
    LogPublisher,
    PartialDeliveryError,
    PgNotifyPublisher,
    RealtimeMessage,
    SupabaseBroadcastPublisher,
    build_publisher,
    notify_payload,
    photo_messages,
)
from picsaris_pipeline.services.delivery import deliver
from picsaris_pipeline.settings import Settings
from tests.support.supabase_server import BROADCAST_PATH, SupabaseRealtimeServer

KEY = "sb-test-service-role-key-5f1c2d"
MODEL = "test-model-v1"
CHANNEL = "picsaris_realtime"


@pytest.fixture
def supabase() -> Iterator[SupabaseRealtimeServer]:
    with SupabaseRealtimeServer(service_role_key=KEY) as server:
        yield server


@pytest.fixture
def publisher(supabase: SupabaseRealtimeServer) -> Iterator[SupabaseBroadcastPublisher]:
    publisher = SupabaseBroadcastPublisher(supabase.url, KEY)
    yield publisher
    publisher.close()


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return connect(f"sqlite:///{tmp_path / 'app.db'}")


def _messages(count: int) -> list[RealtimeMessage]:
    return [RealtimeMessage(f"attendee:{i:04d}", "photo_matched", {"photo_id": "p1", "n": i}) for i in range(count)]


def _published_photo(repo: Repository, guests: int) -> list[str]:
    """A published photo whose matches enqueued 1 + guests messages, as matching enqueues them;
    returns the topics they go to."""
    event = repo.create_event("Wedding")
    attendees = [repo.add_attendee(event.id, f"Guest {i}", True, None, None) for i in range(guests)]
    photo = repo.create_photo(event.id, attendees[0].id, "group.jpg", "image/jpeg", "ab" * 32, 1000, "jpg")
    faces = repo.replace_faces(
        photo, "test-detector", [FaceBox(20 * i, 0, 20 * i + 19, 19, 0.99) for i in range(guests)]
    )
    rows = [(face.id, attendee.id, 0.9) for face, attendee in zip(faces, attendees, strict=True)]
    messages = photo_messages(event.id, photo.id, [a.id for a in attendees], MODEL)
    repo.replace_matches(photo, MODEL, rows, messages)
    repo.update_photo(photo.id, PhotoStatus.PUBLISHED)
    return [m.topic for m in messages]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- Supabase REST broadcast ---------------------------------------------------------------------
def test_a_broadcast_carries_the_service_key_and_the_documented_body(supabase, publisher):
    messages = [
        RealtimeMessage("event:e1", "photo_matched", {"photo_id": "p1", "attendee_ids": ["a1"]}),
        RealtimeMessage("attendee:a1", "photo_matched", {"photo_id": "p1"}, private=False),
    ]
    assert publisher.publish(messages) == 2
    (request,) = supabase.requests
    assert (request.method, request.path, request.status) == ("POST", BROADCAST_PATH, 202)
    assert request.headers["apikey"] == KEY
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "messages": [
            {
                "topic": "event:e1",
                "event": "photo_matched",
                "payload": {"photo_id": "p1", "attendee_ids": ["a1"]},
                "private": True,
            },
            {"topic": "attendee:a1", "event": "photo_matched", "payload": {"photo_id": "p1"}, "private": False},
        ]
    }


def test_messages_go_out_in_batches_of_at_most_batch_size_in_their_order(supabase):
    messages = _messages(250)
    with closing(SupabaseBroadcastPublisher(supabase.url, KEY, batch_size=100)) as publisher:
        assert publisher.publish(messages) == 250
    assert [len(batch) for batch in supabase.batches] == [100, 100, 50]
    assert supabase.messages == [m.as_json() for m in messages]


def test_nothing_to_send_sends_no_request(supabase, publisher):
    assert publisher.publish([]) == 0
    assert supabase.requests == []


def test_a_503_leaves_the_messages_queued_and_the_next_drain_delivers_them_once(supabase, publisher, repo):
    topics = _published_photo(repo, guests=2)
    supabase.fail_next(1, status=503)

    failed = deliver(repo, publisher)
    assert (failed.sent, failed.pending) == (0, 3) and failed.error and "503" in failed.error
    assert supabase.messages == [] and len(repo.unsent_messages()) == 3

    assert deliver(repo, publisher).sent == 3
    assert sorted(m["topic"] for m in supabase.messages) == sorted(topics)
    assert deliver(repo, publisher).sent == 0  # a later drain sends nothing again
    assert len(supabase.requests) == 2 and len(supabase.messages) == 3


def test_a_failure_after_a_delivered_batch_requeues_only_the_rest(supabase, repo):
    topics = _published_photo(repo, guests=4)  # 5 messages: batches of 2, 2, 1
    supabase.fail_next(1, status=503, after=1)
    with closing(SupabaseBroadcastPublisher(supabase.url, KEY, batch_size=2)) as publisher:
        first = deliver(repo, publisher)
        assert (first.sent, first.pending) == (2, 3)
        assert deliver(repo, publisher).sent == 3
    assert sorted(m["topic"] for m in supabase.messages) == sorted(topics)  # each exactly once


def test_a_failed_later_batch_says_how_many_messages_went_out(supabase):
    supabase.fail_next(1, status=503, after=1)
    with (
        closing(SupabaseBroadcastPublisher(supabase.url, KEY, batch_size=100)) as publisher,
        pytest.raises(PartialDeliveryError) as raised,
    ):
        publisher.publish(_messages(250))
    assert (raised.value.sent, raised.value.total) == (100, 250)
    assert isinstance(raised.value.cause, RetryableError)
    assert len(supabase.requests) == 2  # it stopped at the failed batch: order is kept


def test_a_wrong_key_is_a_configuration_error_that_does_not_repeat_the_key(supabase):
    wrong = "sb-wrong-key-000"
    with (
        closing(SupabaseBroadcastPublisher(supabase.url, wrong)) as publisher,
        pytest.raises(ConfigurationError, match="SUPABASE_SERVICE_ROLE_KEY") as raised,
    ):
        publisher.publish(_messages(1))
    assert "401" in str(raised.value) and wrong not in str(raised.value)
    assert wrong not in repr(publisher) and supabase.messages == []


def test_a_url_without_the_realtime_api_is_a_configuration_error(supabase):
    with (
        closing(SupabaseBroadcastPublisher(supabase.url + "/rest/v1", KEY)) as publisher,
        pytest.raises(ConfigurationError, match="SUPABASE_URL"),
    ):
        publisher.publish(_messages(1))


def test_throttling_is_retryable(supabase, publisher):
    supabase.fail_next(1, status=429, retry_after=2)
    with pytest.raises(RetryableError, match="429") as raised:
        publisher.publish(_messages(1))
    assert "retry after 2 s" in str(raised.value)
    assert publisher.publish(_messages(1)) == 1


def test_a_refused_broadcast_is_an_error_retrying_cannot_fix(supabase, publisher):
    with pytest.raises(PicsarisError, match="422") as raised:
        publisher.publish([RealtimeMessage("", "photo_matched", {"photo_id": "p1"})])
    assert not isinstance(raised.value, RetryableError)


def test_an_unreachable_server_is_retryable():
    with (
        closing(SupabaseBroadcastPublisher(f"http://127.0.0.1:{_closed_port()}", KEY, timeout=2.0)) as publisher,
        pytest.raises(RetryableError, match="ConnectError"),
    ):
        publisher.publish(_messages(1))


def test_a_server_that_never_answers_is_retryable():
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        with (
            closing(
                SupabaseBroadcastPublisher(f"http://127.0.0.1:{silent.getsockname()[1]}", KEY, timeout=0.3)
            ) as publisher,
            pytest.raises(RetryableError, match="Timeout"),
        ):
            publisher.publish(_messages(1))


def test_the_key_stays_out_of_the_publishers_repr(supabase, publisher):
    assert KEY not in repr(publisher) and supabase.url in repr(publisher)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b'{"messages": []}', 422),
        (b'{"messages": [{"topic": "t", "event": "e", "payload": {}}]}', 422),  # no private
        (b'{"messages": [{"topic": "t", "event": "e", "payload": "x", "private": true}]}', 422),
        (b'{"messages": [{"topic": "t", "event": "e", "payload": {}, "private": true}]}', 202),
    ],
)
def test_the_local_server_refuses_bodies_supabase_would_refuse(supabase, body, status):
    headers = {"apikey": KEY, "Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    response = httpx.post(supabase.url + BROADCAST_PATH, content=body, headers=headers)
    assert response.status_code == status
    assert len(supabase.messages) == (1 if status == 202 else 0)


# -- choosing a publisher ------------------------------------------------------------------------
def _settings(**env: str) -> Settings:
    return Settings.from_env({"PICSARIS_HOME": "/tmp/picsaris-test-home", **env})


def test_the_embedded_default_logs():
    assert isinstance(build_publisher(_settings()), LogPublisher)


def test_supabase_is_chosen_by_its_url_and_built_once_per_process(supabase):
    settings = _settings(SUPABASE_URL=supabase.url, SUPABASE_SERVICE_ROLE_KEY=KEY)
    publisher = build_publisher(settings)
    assert isinstance(publisher, SupabaseBroadcastPublisher)
    assert publisher.endpoint == supabase.url + BROADCAST_PATH
    assert build_publisher(settings) is publisher
    assert publisher.publish(_messages(1)) == 1


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"SUPABASE_URL": "https://project.supabase.co"}, "SUPABASE_SERVICE_ROLE_KEY"),
        ({"PICSARIS_REALTIME": "supabase", "SUPABASE_SERVICE_ROLE_KEY": KEY}, "SUPABASE_URL"),
    ],
)
def test_supabase_without_its_url_or_key_names_what_is_missing(env, missing):
    with pytest.raises(ConfigurationError, match=missing):
        build_publisher(_settings(**env))


def test_pg_notify_refuses_a_database_that_is_not_postgres():
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        build_publisher(_settings(PICSARIS_REALTIME="pg_notify"))  # the embedded default's SQLite


def test_pg_notify_is_built_from_the_database_url_without_connecting():
    url = f"postgresql+psycopg2://postgres:secret@127.0.0.1:{_closed_port()}/picsaris"
    publisher = build_publisher(_settings(PICSARIS_REALTIME="pg_notify", PICSARIS_DATABASE_URL=url))
    assert isinstance(publisher, PgNotifyPublisher) and publisher.channel == CHANNEL
    assert "secret" not in repr(publisher)


# -- pg_notify on the machine's PostgreSQL -------------------------------------------------------
@contextmanager
def _listening(database_url: str) -> Iterator[Any]:
    import psycopg2
    import psycopg2.extensions

    dsn = sa.engine.make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg2.connect(dsn)
    try:
        conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
        with conn.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        yield conn
    finally:
        conn.close()


def _heard(conn: Any, expected: int, timeout: float = 5.0, settle: float = 0.3) -> list[Any]:
    """Notifications received: waits up to timeout for `expected`, then `settle` more for extras."""
    deadline = time.monotonic() + timeout
    while len(conn.notifies) < expected and time.monotonic() < deadline:
        select.select([conn], [], [], max(0.0, deadline - time.monotonic()))
        conn.poll()
    select.select([conn], [], [], settle)
    conn.poll()
    return list(conn.notifies)


@pytest.fixture
def pg_notify(postgres_server: str) -> Iterator[PgNotifyPublisher]:
    publisher = PgNotifyPublisher(postgres_server)
    yield publisher
    publisher.close()


def test_a_listener_hears_each_message_as_the_documented_json_in_order(postgres_server, pg_notify):
    messages = photo_messages("e1", "p1", ["a1", "a2"], MODEL)
    with _listening(postgres_server) as listener:
        assert pg_notify.publish(messages) == 3
        heard = _heard(listener, 3)
    assert [n.channel for n in heard] == [CHANNEL] * 3
    assert [n.payload for n in heard] == [notify_payload(m) for m in messages]
    assert json.loads(heard[1].payload) == {
        "topic": "attendee:a1",
        "event": "photo_matched",
        "payload": {"event_id": "e1", "photo_id": "p1"},
        "private": True,
    }


def test_postgres_takes_a_notification_just_under_its_limit_and_we_refuse_one_at_it(postgres_server, pg_notify):
    def sized(size: int) -> RealtimeMessage:
        message = RealtimeMessage("event:e1", "photo_matched", {"pad": ""})
        pad = size - len(notify_payload(message).encode())
        return RealtimeMessage("event:e1", "photo_matched", {"pad": "x" * pad})

    largest, too_large = sized(NOTIFY_PAYLOAD_LIMIT - 1), sized(NOTIFY_PAYLOAD_LIMIT)
    with _listening(postgres_server) as listener:
        assert pg_notify.publish([largest]) == 1
        with pytest.raises(BadInputError, match=f"{NOTIFY_PAYLOAD_LIMIT} bytes"):
            pg_notify.publish([too_large])
        heard = _heard(listener, 1)
    assert [len(n.payload) for n in heard] == [NOTIFY_PAYLOAD_LIMIT - 1]


def test_an_oversize_message_is_refused_after_sending_the_ones_before_it(postgres_server, pg_notify):
    small, huge = _messages(2), RealtimeMessage("event:e1", "photo_matched", {"pad": "x" * NOTIFY_PAYLOAD_LIMIT})
    with _listening(postgres_server) as listener:
        with pytest.raises(PartialDeliveryError) as raised:
            pg_notify.publish([small[0], huge, small[1]])
        heard = _heard(listener, 1)
    assert raised.value.sent == 1 and isinstance(raised.value.cause, BadInputError)
    assert [n.payload for n in heard] == [notify_payload(small[0])]


def test_a_notification_postgres_refuses_is_an_error_retrying_cannot_fix(postgres_server):
    repository = unshared(postgres_server)  # the publisher's door, below its own payload check
    try:
        with pytest.raises(PicsarisError, match=r"pg_notify on .* failed") as raised:
            repository.notify(CHANNEL, ["x" * NOTIFY_PAYLOAD_LIMIT])
    finally:
        repository.dispose()
    assert not isinstance(raised.value, RetryableError)


def test_pg_notify_on_an_unreachable_database_is_retryable():
    with (
        closing(PgNotifyPublisher(f"postgresql+psycopg2://postgres@127.0.0.1:{_closed_port()}/picsaris")) as publisher,
        pytest.raises(RetryableError, match="database unavailable"),
    ):
        publisher.publish(_messages(1))
