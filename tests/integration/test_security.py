"""Hostile or careless input never becomes SQL, never reaches another guest's data, and secrets
never reach a log, an event log or asset metadata."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from picsaris_pipeline.errors import BadInputError, NotFoundError
from picsaris_pipeline.services.intake import content_type_for, request_upload, sha256_of
from tests.support.db_helpers import fetch_rows, has_table, url_shown
from tests.support.supabase_server import SupabaseRealtimeServer

INJECTIONS = ["x' OR '1'='1", "01ABC'; DROP TABLE photos; --", "../../etc/passwd", "01" + "Z" * 24 + "\x00"]


def test_names_are_stored_verbatim_never_run_as_sql(pipeline):
    name = "Robert'); DROP TABLE photos; --"
    event = pipeline.repo.create_event(name)
    guest = pipeline.repo.add_attendee(event.id, "Ana' OR 1=1 --", True, None, None)
    assert pipeline.repo.get_event(event.id).name == name
    assert pipeline.repo.get_attendee(guest.id).name == "Ana' OR 1=1 --"
    assert has_table(pipeline.repo, "photos")


@pytest.mark.parametrize("hostile", INJECTIONS)
def test_malformed_ids_are_refused_before_any_query(pipeline, event, hostile):
    with pytest.raises(BadInputError, match="not a valid"):
        pipeline.repo.get_event(hostile)
    with pytest.raises(BadInputError, match="not a valid"):
        pipeline.repo.get_attendee(hostile)
    with pytest.raises(BadInputError, match="not a valid"):
        pipeline.repo.get_photo(hostile)
    assert pipeline.repo.photos_by_ids([hostile]) == {} and pipeline.repo.attendees_by_ids([hostile]) == {}


def test_a_guest_cannot_upload_into_another_event(pipeline, event):
    other = pipeline.repo.create_event("Another party")
    stranger = pipeline.repo.add_attendee(other.id, "Stranger", True, None, None)
    data = b"\xff\xd8 bytes"
    with pytest.raises(BadInputError):
        request_upload(
            pipeline.repo, pipeline.store, event.id, stranger.id, sha256_of(data), len(data), "image/jpeg", "a.jpg"
        )


def test_the_upload_key_comes_from_the_record_not_from_the_file_name(pipeline, event):
    guest = pipeline.repo.add_attendee(event.id, "Guest", True, None, None)
    data = b"\xff\xd8 bytes"
    request = request_upload(
        pipeline.repo,
        pipeline.store,
        event.id,
        guest.id,
        sha256_of(data),
        len(data),
        content_type_for("x.jpg"),
        "../../../events/other/photos/evil.jpg",
    )
    assert request.photo.object_key == f"events/{event.id}/photos/{guest.id}/{request.photo.id}.jpg"
    assert request.photo.file_name == "evil.jpg"


def test_an_unknown_but_well_formed_id_is_not_found(pipeline):
    with pytest.raises(NotFoundError):
        pipeline.repo.get_photo("01" + "A" * 24)


def test_secrets_never_reach_logs_event_logs_or_metadata(postgres_server, tmp_path, shared_photos, monkeypatch, caplog):
    """A run on a Postgres URL carrying a password, whose realtime publish is refused (wrong service
    key): the failure is recorded, the secrets are not."""
    import dagster as dg

    from picsaris_pipeline.orchestration.resources import RealtimeResource
    from tests.support.environment import fresh_database
    from tests.support.pipeline_helpers import Pipeline

    key, password = "sk-live-0123456789-secret", "hunter2-db-password"
    with (
        fresh_database(postgres_server, "picsaris_secret") as url,
        dg.instance_for_test() as instance,
        SupabaseRealtimeServer(service_role_key="the-right-key") as supabase,
    ):
        url = url.replace("postgres@", f"postgres:{password}@")  # trust auth: any password is accepted
        pipeline = Pipeline.build(tmp_path, instance, database_url=url)
        monkeypatch.setenv("SUPABASE_URL", supabase.url)
        monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", key)
        caplog.set_level(logging.DEBUG)
        event = pipeline.event()
        obama = pipeline.attendee(event, "Barack Obama", shared_photos["obama_1.jpg"].path)
        assert pipeline.run_attendee(obama.id).success
        photo = pipeline.upload(event, obama, shared_photos["obama_2.jpg"].path.read_bytes(), "obama_2.jpg")
        result = pipeline.run_photo(photo.id, realtime=RealtimeResource())
        assert result.success
        assert supabase.requests and supabase.requests[0].status == 401  # it really tried, and was refused
        texts = [record.getMessage() for record in caplog.records]
        for record in instance.all_logs(result.run_id):
            texts.append(record.message or "")
            if record.dagster_event and record.dagster_event.is_step_materialization:
                materialization = record.dagster_event.step_materialization_data.materialization
                texts += [str(value) for value in materialization.metadata.values()]
        texts += [f"{item} {item.attempts}" for item in pipeline.repo.unsent_messages(photo.id)]
        texts += [str(row) for row in fetch_rows(pipeline.repo, sa.text("select last_error from realtime_outbox"))]
        texts += [url_shown(pipeline.repo)]
    assert any("SUPABASE_SERVICE_ROLE_KEY" in text for text in texts)  # the failure is visible and says why
    assert not [text for text in texts if key in text]
    assert not [text for text in texts if password in text]
