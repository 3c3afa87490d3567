import time

import pytest

from picsaris_pipeline.domain.ids import id_timestamp_ms, is_valid_id, new_id
from picsaris_pipeline.domain.keys import derived_prefix, parse_key, photo_key, selfie_key, verified_image_key
from picsaris_pipeline.errors import BadInputError


def test_ids_are_valid_ulids_that_sort_by_time():
    earlier = new_id(now_ms=1_700_000_000_000)
    later = new_id(now_ms=1_700_000_000_001)
    assert is_valid_id(earlier) and is_valid_id(later)
    assert earlier < later


def test_id_timestamp_round_trips():
    now = int(time.time() * 1000)
    assert id_timestamp_ms(new_id(now_ms=now)) == now


def test_ids_minted_in_the_same_millisecond_differ():
    assert len({new_id(now_ms=1) for _ in range(1000)}) == 1000


def test_photo_key_follows_the_contract_and_parses_back():
    event, uploader, photo = new_id(), new_id(), new_id()
    key = photo_key(event, uploader, photo, "JPG")
    assert key == f"events/{event}/photos/{uploader}/{photo}.jpg"
    parsed = parse_key(key)
    assert parsed is not None
    assert (parsed.kind, parsed.event_id, parsed.uploader_id, parsed.object_id, parsed.ext) == (
        "photo",
        event,
        uploader,
        photo,
        "jpg",
    )


def test_selfie_key_follows_the_contract_and_parses_back():
    event, attendee = new_id(), new_id()
    key = selfie_key(event, attendee, ".heic")
    assert key == f"events/{event}/selfies/{attendee}.heic"
    parsed = parse_key(key)
    assert parsed is not None and parsed.kind == "selfie" and parsed.object_id == attendee


def test_derived_images_live_under_the_photo_folder():
    event, photo = new_id(), new_id()
    assert verified_image_key(event, photo).startswith(derived_prefix(event, photo))
    assert parse_key(verified_image_key(event, photo)) is None


@pytest.mark.parametrize(
    "key",
    [
        "events/x/photos/y/z.jpg",
        "events/../photos/a/b.jpg",
        "random.txt",
        "events/{e}/photos/{e}/{e}.jpg/extra",
        "events/{e}/photos/{e}/{e}",
    ],
)
def test_keys_outside_the_contract_do_not_parse(key):
    e = new_id()
    assert parse_key(key.format(e=e)) is None


def test_unsupported_extension_is_refused():
    with pytest.raises(BadInputError, match="unsupported file type"):
        photo_key(new_id(), new_id(), new_id(), "exe")


def test_invalid_ids_are_refused():
    with pytest.raises(BadInputError, match="not a valid id"):
        photo_key("../etc", new_id(), new_id(), "jpg")
