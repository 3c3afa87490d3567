"""`picsaris demo`: the sample wedding runs on the embedded default and prints what the README shows;
its outcomes per photo and per guest are what the story says."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from picsaris_pipeline.cli.demo import run_demo
from picsaris_pipeline.domain.model import Attendee, Photo, PhotoStatus, ReferenceStatus
from picsaris_pipeline.orchestration.app import App

README = Path(__file__).resolve().parents[2] / "README.md"

# What the demo prints between its event line and its closing "More:" line (the event's name and
# id change with every run), as the README's Quick start shows it.
EXPECTED = """\
  Eileen Collins signs up with the selfie Eileen_Collins.jpg
  Sam Rivera signs up with the selfie Sam_Rivera.jpg
Sam Rivera uploads 8 photo(s) as a phone would:
  01_arrival.png
  02_portrait_from_phone.jpg
  03_group_photo.heic
  04_coffee_break.png
  05_garden_party.jpg
  06_damaged_upload.jpg
  07_the_photographer.webp
  08_arrival_again.png: same bytes as 01_arrival.png, not stored twice
Running the asset graph (face model yunet-dlib-resnet-v1-5pt-j0) ...

Attendees:
  Eileen Collins           reference ready
  Sam Rivera               rejected: no face found in the selfie

Who was found in which photo:
  01_arrival.png               1 face(s): Eileen Collins (0.80)
  02_portrait_from_phone.jpg   1 face(s): Eileen Collins (0.81)
  03_group_photo.heic          3 face(s): Eileen Collins (0.81) + 2 unmatched
  04_coffee_break.png          0 face(s): nobody we know
  05_garden_party.jpg          2 face(s): nobody we know
  06_damaged_upload.jpg        rejected: image data is corrupt or truncated (image file is truncated (2 bytes not processed))
  07_the_photographer.webp     1 face(s): nobody we know
3 match(es) in 3 photo(s).

After the photos were processed, a late joiner signs up:
  Grace Hopper signs up with the selfie Grace_Hopper.jpg
Running the asset graph (face model yunet-dlib-resnet-v1-5pt-j0) ...
  Grace Hopper is found in the photos taken before she signed up: 03_group_photo.heic (0.84), 05_garden_party.jpg (0.86)

Eileen Collins withdraws her consent:
  deleted 3 match(es) in 3 photo(s), 3 face vector(s) and 0 engine face(s) of their faces in event
  photos, their reference and their selfie image; redrew 3 thumbnail(s) without their name.

Who was found in which photo:
  01_arrival.png               1 face(s): nobody we know
  02_portrait_from_phone.jpg   1 face(s): nobody we know
  03_group_photo.heic          3 face(s): Grace Hopper (0.84) + 2 unmatched
  04_coffee_break.png          0 face(s): nobody we know
  05_garden_party.jpg          2 face(s): Grace Hopper (0.86) + 1 unmatched
  06_damaged_upload.jpg        rejected: image data is corrupt or truncated (image file is truncated (2 bytes not processed))
  07_the_photographer.webp     1 face(s): nobody we know
2 match(es) in 2 photo(s).
"""  # noqa: E501 (the rejected photo's reason is printed whole)


@dataclass
class DemoRun:
    app: App
    ok: bool
    lines: list[str]

    @property
    def event_id(self) -> str:
        (event,) = self.app.repo.list_events()
        return event.id

    def photo(self, file_name: str) -> Photo:
        return next(p for p in self.app.repo.list_photos(self.event_id) if p.file_name == file_name)

    def attendee(self, name: str) -> Attendee:
        return next(a for a in self.app.repo.list_attendees(self.event_id) if a.name == name)

    def guests_in(self, file_name: str) -> list[str]:
        photo_id = self.photo(file_name).id
        version = self.app.shown_version(self.event_id)
        return sorted(m.attendee_name for m in self.app.repo.list_matches(self.event_id, photo_id, version))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """The demo run once, as `picsaris demo` runs it, on a fresh embedded default."""
    home = tmp_path_factory.mktemp("demo") / "home"
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("PICSARIS_") or n == "DAGSTER_HOME"]:
            env.delenv(name)
        env.setenv("PICSARIS_HOME", str(home))
        app = App.from_env()
        lines: list[str] = []
        ok = run_demo(app, None, None, echo=lambda line="": lines.extend(str(line).split("\n")))
        yield DemoRun(app, ok, lines)


def _story(lines: list[str]) -> str:
    start = next(i for i, line in enumerate(lines) if line.startswith("Event ")) + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("More: "))
    return "\n".join(lines[start:end]).rstrip("\n") + "\n"


def test_the_demo_prints_what_the_readme_shows(demo: DemoRun) -> None:
    assert demo.ok
    assert _story(demo.lines) == EXPECTED
    assert f"```\n{EXPECTED}```" in README.read_text()


def test_a_guest_is_found_alone_in_a_sideways_phone_photo_and_in_the_group(demo: DemoRun) -> None:
    # Found before she withdrew (printed), gone after: see the withdrawal test for the rows.
    assert "  02_portrait_from_phone.jpg   1 face(s): Eileen Collins (0.81)" in demo.lines
    assert "  03_group_photo.heic          3 face(s): Eileen Collins (0.81) + 2 unmatched" in demo.lines


def test_group_photos_hold_a_guest_beside_the_stranger(demo: DemoRun) -> None:
    assert (demo.photo("03_group_photo.heic").face_count, demo.guests_in("03_group_photo.heic")) == (
        3,
        ["Grace Hopper"],
    )
    assert (demo.photo("05_garden_party.jpg").face_count, demo.guests_in("05_garden_party.jpg")) == (
        2,
        ["Grace Hopper"],
    )


def test_the_late_joiner_is_the_face_where_she_stands_in_each_group_photo(demo: DemoRun) -> None:
    # Left to right: Eileen, Grace, the stranger in the group photo; Grace, the stranger in the garden.
    hopper = demo.attendee("Grace Hopper")
    for file_name, place in (("03_group_photo.heic", 1), ("05_garden_party.jpg", 0)):
        photo_id = demo.photo(file_name).id
        faces = sorted(demo.app.repo.get_faces(photo_id), key=lambda face: face.left)
        matches = demo.app.repo.list_matches(demo.event_id, photo_id)
        assert [(m.face_id, m.attendee_id) for m in matches] == [(faces[place].id, hopper.id)], file_name


def test_the_stranger_is_found_as_a_face_and_matched_to_nobody(demo: DemoRun) -> None:
    alone = demo.photo("07_the_photographer.webp")
    assert (alone.status, alone.face_count, demo.guests_in(alone.file_name)) == (PhotoStatus.PUBLISHED, 1, [])
    # He never signs up: the only guests are the ones the story names.
    guests = {a.name for a in demo.app.repo.list_attendees(demo.event_id)}
    assert guests == {"Eileen Collins", "Sam Rivera", "Grace Hopper"}


def test_the_truncated_upload_is_rejected(demo: DemoRun) -> None:
    damaged = demo.photo("06_damaged_upload.jpg")
    assert damaged.status is PhotoStatus.REJECTED
    assert damaged.reason is not None and "truncated" in damaged.reason


def test_the_repeated_upload_is_not_stored_twice(demo: DemoRun) -> None:
    names = [p.file_name for p in demo.app.repo.list_photos(demo.event_id)]
    assert "08_arrival_again.png" not in names and names.count("01_arrival.png") == 1
    assert "  08_arrival_again.png: same bytes as 01_arrival.png, not stored twice" in demo.lines


def test_a_selfie_without_a_face_signs_up_a_guest_who_is_never_matched(demo: DemoRun) -> None:
    sam = demo.attendee("Sam Rivera")
    assert sam.reference_status is ReferenceStatus.REJECTED
    assert all(m.attendee_id != sam.id for m in demo.app.repo.list_matches(demo.event_id))


def test_the_late_joiner_finds_the_photos_processed_before_she_signed_up(demo: DemoRun) -> None:
    hopper = demo.attendee("Grace Hopper")
    group, garden = demo.photo("03_group_photo.heic"), demo.photo("05_garden_party.jpg")
    assert hopper.created_at > max(group.created_at, garden.created_at)
    assert "  05_garden_party.jpg          2 face(s): nobody we know" in demo.lines  # before she signed up
    matched = {m.file_name for m in demo.app.repo.list_matches(demo.event_id) if m.attendee_id == hopper.id}
    assert matched == {"03_group_photo.heic", "05_garden_party.jpg"}


def test_the_withdrawn_guest_is_gone_from_every_photo(demo: DemoRun) -> None:
    collins = demo.attendee("Eileen Collins")
    assert not collins.consent and collins.selfie_key is None
    assert all(m.attendee_id != collins.id for m in demo.app.repo.list_matches(demo.event_id))
    assert demo.app.repo.attendee_vector(collins.id, demo.app.engine.model_version) is None
    assert [demo.photo(name).face_count for name in ("01_arrival.png", "02_portrait_from_phone.jpg")] == [1, 1]
