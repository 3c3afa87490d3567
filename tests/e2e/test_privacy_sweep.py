"""The hostile tester's sweep: build an event on the embedded default with real shared faces, erase a
guest (attendee delete), erase a photo (photo delete) and let another guest withdraw consent; then
read every SQLite table (Dagster's included: every *.db under $PICSARIS_HOME), every file and every
object under the home, and find no name of the erased guest, no picture of the erased photo (its
bytes, hashes, base64) and no old picture of the withdrawn guest."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from pathlib import Path

from picsaris_pipeline.domain.keys import thumbnail_key
from picsaris_pipeline.orchestration.app import App
from tests.support.cli_runner import picsaris

ERASED_GUEST = "Barack Obama"


def _fingerprints(blob: bytes) -> list[bytes]:
    """Ways a picture can be kept: its bytes (a slice), hashes (hex) and base64 (as a data URI starts)."""
    middle = len(blob) // 2
    return [
        blob[middle : middle + 48],
        hashlib.sha256(blob).hexdigest().encode(),
        hashlib.md5(blob).hexdigest().encode(),
        base64.b64encode(blob)[:64],
    ]


def _sqlite_values(path: Path) -> list[bytes]:
    """Every value of every table of a SQLite file, as bytes."""
    values: list[bytes] = []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")]
        for table in tables:
            for row in conn.execute(f'select * from "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        values.append(value)
                    elif value is not None:
                        values.append(str(value).encode())
    return values


def _found(home: Path, needles: dict[str, bytes], skip_sha256: frozenset[str] = frozenset()) -> list[str]:
    found = []
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        if hashlib.sha256(raw).hexdigest() in skip_sha256:
            continue
        haystacks = [raw]
        if raw.startswith(b"SQLite format 3\x00"):
            haystacks += _sqlite_values(path)
        for label, needle in needles.items():
            if any(needle in haystack for haystack in haystacks):
                found.append(f"{label} in {path.relative_to(home)}")
    return found


def test_no_trace_of_an_erased_guest_an_erased_photo_or_a_withdrawn_guests_old_pictures(picsaris_home, shared_photos):
    event = picsaris("event", "create", "Sweep").strip()

    def sign_up(name: str, selfie: str) -> str:
        return picsaris("attendee", "add", event, "--name", name, "--selfie", str(shared_photos[selfie].path)).strip()

    obama = sign_up(ERASED_GUEST, "obama_1.jpg")  # erased
    biden = sign_up("Joe Biden", "biden_2.jpg")  # withdraws
    kit = sign_up("Kit Harington", "kit_harington_1.jpg")  # stays
    kits_photos = ["group_obama_and_biden.jpg", "obama_2.jpg", "biden_1.jpg", "kit_harington_2.jpg"]
    uploaded = picsaris("upload", event, "--uploader", kit, *(str(shared_photos[n].path) for n in kits_photos))
    by_name = dict(zip(kits_photos, uploaded.split(), strict=True))
    obamas_upload = picsaris("upload", event, "--uploader", obama, str(shared_photos["obama_4.jpg"].path)).strip()
    picsaris("process")

    app = App.from_env()
    found_in = {m.photo_id for m in app.repo.list_matches(event) if m.attendee_id == biden}
    assert found_in, "the withdrawing guest must have been found somewhere for the test to mean anything"
    erased_photo = by_name["kit_harington_2.jpg"]
    pictures: dict[str, bytes] = {}
    for photo_id in (erased_photo, obamas_upload):
        photo = app.repo.get_photo(photo_id)
        pictures[f"upload {photo_id}"] = app.store.get(photo.object_key)
        for info in app.store.list(f"events/{event}/derived/{photo_id}/"):
            pictures[info.key] = app.store.get(info.key)
    obama_selfie = app.repo.get_attendee(obama).selfie_key
    assert obama_selfie is not None
    pictures["erased guest's selfie"] = app.store.get(obama_selfie)
    for photo_id in found_in:
        pictures[f"old thumbnail of {photo_id}"] = app.store.get(thumbnail_key(event, photo_id))

    picsaris("photo", "delete", erased_photo)
    picsaris("attendee", "delete", obama)
    picsaris("attendee", "consent", biden, "--withdraw")

    needles = {ERASED_GUEST: ERASED_GUEST.encode(), "Obama": b"Obama"}
    for label, blob in pictures.items():
        for i, fingerprint in enumerate(_fingerprints(blob)):
            needles[f"{label} #{i}"] = fingerprint
    # Other guests' original uploads are kept byte for byte as their phones sent them, and some of
    # the shared photos carry a caption naming who is in them (EXIF/IPTC, not ours to rewrite):
    # skipped only when the file is exactly such an original (its SHA-256 as declared at upload).
    originals = frozenset(p.declared_sha256 for p in app.repo.list_photos(event))
    assert _found(picsaris_home, needles, originals) == []
    # Nothing personal of anybody in Dagster's storage: no guest's name, no file name.
    personal = {text: text.encode() for text in ("Kit Harington", "Joe Biden", *kits_photos, "obama_4.jpg")}
    assert _found(picsaris_home / "dagster", personal) == []
    # The sweep would have seen them: the survivors are all still there.
    still = {
        "Kit Harington": b"Kit Harington",
        "kept photo": app.store.get(thumbnail_key(event, by_name["obama_2.jpg"])),
    }
    assert len(_found(picsaris_home, still)) >= 2
