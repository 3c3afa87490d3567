"""`picsaris attendee import` and `picsaris attendee list` end to end on the embedded default, with
the real faces of ../shared/faces: a folder or a CSV guest list signs guests up in one process, each
unusable file is refused with its reason, and what it produces is what `attendee add` produces."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from picsaris_pipeline.cli import main
from picsaris_pipeline.services.attendees import SELFIE_DELETED
from picsaris_pipeline.services.guest_import import name_from_file, read_csv
from tests.support.cli_runner import found_by_name, picsaris


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def imported(result: Result) -> dict[str, str]:
    """stdout `attendee_id,name` rows as name -> attendee id."""
    return {row["name"]: row["attendee_id"] for row in csv.DictReader(io.StringIO(result.stdout))}


def listed(event_id: str) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(picsaris("attendee", "list", event_id, "--format", "json"))}


def linked(folder: Path, files: dict[str, Path]) -> Path:
    """A folder of links named as a guest list names selfies (the shared photos are not copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in files.items():
        (folder / name).symlink_to(target)
    return folder


@pytest.fixture
def event_id(picsaris_home: Path) -> str:
    return picsaris("event", "create", "Guest list").strip()


def test_a_file_stem_is_the_guests_name() -> None:
    assert name_from_file(Path("Jane_Doe.jpg")) == "Jane Doe"
    assert name_from_file(Path("Mary  Ann_O'Neil.png")) == "Mary Ann O'Neil"


def test_a_folder_signs_up_one_guest_per_selfie_and_refuses_the_rest(event_id, shared_photos, tmp_path) -> None:
    folder = linked(
        tmp_path / "selfies",
        {
            "Barack_Obama.jpg": shared_photos["obama_1.jpg"].path,
            "Kit_Harington.jpg": shared_photos["kit_harington_2.jpg"].path,
            "Rex_The_Dog.jpg": shared_photos["noface_dog.jpg"].path,
            "Two_Friends.jpg": shared_photos["group_two_people.jpg"].path,
        },
    )
    (folder / "seating_plan.txt").write_text("table 1: Barack, Kit\n")

    result = run("attendee", "import", event_id, str(folder))

    assert result.exit_code == 0, result.output
    assert set(imported(result)) == {"Barack Obama", "Kit Harington"}
    assert "Rex_The_Dog.jpg: Rex The Dog: no face found in the selfie" in result.stderr
    assert "Two_Friends.jpg: Two Friends: 2 faces in the selfie" in result.stderr
    assert "seating_plan.txt: seating plan: not an image we can read" in result.stderr
    assert "imported 2 guest(s), refused 3" in result.stderr
    assert "checking selfies" in result.stderr and "building references" in result.stderr  # progress
    guests = listed(event_id)
    assert set(guests) == {"Barack Obama", "Kit Harington"}
    assert {row["reference_status"] for row in guests.values()} == {"ready"}
    assert {row["attendee_id"] for row in guests.values()} == set(imported(result).values())


def test_a_csv_gives_names_paths_relative_to_it_and_consent(event_id, shared_photos, tmp_path) -> None:
    folder = linked(
        tmp_path / "list",
        {
            "obama.jpg": shared_photos["obama_1.jpg"].path,
            "rose.jpg": shared_photos["rose_leslie_1.jpg"].path,
            "alex.png": shared_photos["alex_lacamoire_1.png"].path,
        },
    )
    (folder / "guests.csv").write_text(
        "name,selfie,consent\nBarack Obama,obama.jpg,yes\nRose Leslie,rose.jpg,no\nAlex Lacamoire,alex.png,\n"
    )

    result = run("attendee", "import", event_id, str(folder / "guests.csv"))

    assert result.exit_code == 0, result.output
    assert set(imported(result)) == {"Barack Obama", "Rose Leslie", "Alex Lacamoire"}
    guests = listed(event_id)
    assert guests["Rose Leslie"]["consent"] is False
    assert guests["Rose Leslie"]["reference_status"] == "no_consent"
    assert guests["Alex Lacamoire"]["consent"] is True  # an empty consent cell is `attendee add`'s default
    assert guests["Alex Lacamoire"]["reference_status"] == "ready"
    assert guests["Barack Obama"]["reference_status"] == "ready"


def test_each_unreadable_csv_row_is_refused_with_its_line(event_id, shared_photos, tmp_path) -> None:
    folder = linked(tmp_path / "list", {"kit.jpg": shared_photos["kit_harington_2.jpg"].path})
    (folder / "guests.csv").write_text(
        "name,selfie,consent\n"
        "Kit Harington,kit.jpg,yes\n"
        ",kit.jpg,yes\n"  # line 3
        "Joe Biden,,yes\n"  # line 4
        "Tom Cruise,tom.jpg,maybe\n"  # line 5
        "Lin-Manuel Miranda,lin.png\n"  # line 6: no such file
        "kit  harington,kit.jpg,yes\n"  # line 7: the same guest again
        "Rose Leslie,rose.jpg,yes,table 4\n"  # line 8
    )

    result = run("attendee", "import", event_id, str(folder / "guests.csv"))

    assert result.exit_code == 0, result.output
    assert set(imported(result)) == {"Kit Harington"}
    refusals = [line for line in result.stderr.splitlines() if line.startswith("refused")]
    assert len(refusals) == 6, result.stderr
    assert "guests.csv line 3: no name" in result.stderr
    assert "guests.csv line 4: Joe Biden: no selfie file" in result.stderr
    assert "guests.csv line 5: Tom Cruise: consent must be yes or no, not 'maybe'" in result.stderr
    assert "guests.csv line 6 (lin.png): Lin-Manuel Miranda: no such file" in result.stderr
    assert "guests.csv line 7 (kit.jpg): kit harington: the name appears twice (first at guests.csv line 2" in (
        result.stderr
    )
    assert "guests.csv line 8: more columns than the header's 3" in result.stderr


def test_a_csv_without_its_columns_is_unusable(tmp_path) -> None:
    path = tmp_path / "guests.csv"
    path.write_text("guest,photo\nKit,kit.jpg\n")
    with pytest.raises(Exception, match="needs a header row with the columns name,selfie"):
        read_csv(path)


def test_unusable_input_exits_non_zero_without_signing_anyone_up(event_id, tmp_path) -> None:
    (tmp_path / "bad.csv").write_text("guest,photo\nKit,kit.jpg\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "only_text").mkdir()
    (tmp_path / "only_text" / "Jane_Doe.txt").write_text("not a selfie")

    no_columns = run("attendee", "import", event_id, str(tmp_path / "bad.csv"))
    empty = run("attendee", "import", event_id, str(tmp_path / "empty"))
    nothing_usable = run("attendee", "import", event_id, str(tmp_path / "only_text"))
    unknown_event = run("attendee", "import", "evt_" + "0" * 26, str(tmp_path / "only_text"))

    assert no_columns.exit_code == 2 and "needs a header row" in no_columns.stderr
    assert empty.exit_code == 2 and "holds no files" in empty.stderr
    assert nothing_usable.exit_code == 1 and "Jane_Doe.txt: Jane Doe: not an image" in nothing_usable.stderr
    assert unknown_event.exit_code == 2 and unknown_event.stderr.startswith("error: ")
    assert "Traceback" not in no_columns.output + empty.output + nothing_usable.output + unknown_event.output
    assert listed(event_id) == {}


def test_importing_the_same_list_again_adds_nobody(event_id, shared_photos, tmp_path) -> None:
    folder = linked(tmp_path / "selfies", {"Kit_Harington.jpg": shared_photos["kit_harington_2.jpg"].path})
    first = run("attendee", "import", event_id, str(folder))
    again = run("attendee", "import", event_id, str(folder))

    assert first.exit_code == 0
    assert again.exit_code == 1
    assert f"Kit Harington: already signed up as attendee {imported(first)['Kit Harington']}" in again.stderr
    assert list(listed(event_id)) == ["Kit Harington"]


def test_attendee_list_csv_and_json_agree(event_id, shared_photos, tmp_path) -> None:
    folder = linked(
        tmp_path / "list",
        {"kit.jpg": shared_photos["kit_harington_2.jpg"].path, "rose.jpg": shared_photos["rose_leslie_1.jpg"].path},
    )
    (folder / "guests.csv").write_text("name,selfie,consent\nKit Harington,kit.jpg,y\nRose Leslie,rose.jpg,n\n")
    assert run("attendee", "import", event_id, str(folder / "guests.csv")).exit_code == 0

    as_csv = list(csv.DictReader(io.StringIO(picsaris("attendee", "list", event_id))))
    as_json = json.loads(picsaris("attendee", "list", event_id, "--format", "json"))

    assert list(as_csv[0]) == ["attendee_id", "name", "consent", "reference_status", "reason"]
    assert [(r["attendee_id"], r["name"], r["reference_status"]) for r in as_csv] == [
        (r["attendee_id"], r["name"], r["reference_status"]) for r in as_json
    ]
    assert {r["name"]: r["consent"] for r in as_csv} == {"Kit Harington": "True", "Rose Leslie": "False"}
    assert {r["name"]: r["reason"] for r in as_json}["Rose Leslie"] == SELFIE_DELETED


def test_an_import_produces_what_attendee_add_and_process_produce(picsaris_home, shared_photos, tmp_path) -> None:
    """The same guests and photos in two events, signed up one `attendee add` at a time or by one
    import: the same attendees, reference vectors and matches."""
    from picsaris_pipeline.orchestration.app import App

    selfies = {"Barack Obama": "obama_1.jpg", "Joe Biden": "biden_2.jpg", "Kit Harington": "kit_harington_2.jpg"}
    photos = [shared_photos[f].path for f in ("obama_2.jpg", "biden_1.jpg", "group_obama_and_biden.jpg")]
    photos += [shared_photos[f].path for f in ("kit_harington_1.jpg", "group_kit_with_rose.jpg", "noface_dog.jpg")]
    by_add = picsaris("event", "create", "One at a time").strip()
    by_import = picsaris("event", "create", "Guest list").strip()
    added = {
        name: picsaris("attendee", "add", by_add, "--name", name, "--selfie", str(shared_photos[file].path)).strip()
        for name, file in selfies.items()
    }
    picsaris("process")
    named = {f"{name.replace(' ', '_')}.jpg": shared_photos[file].path for name, file in selfies.items()}
    folder = linked(tmp_path / "selfies", named)
    result = run("attendee", "import", by_import, str(folder))
    assert result.exit_code == 0, result.output
    from_import = imported(result)
    for event_id, guests in ((by_add, added), (by_import, from_import)):
        picsaris("upload", event_id, "--uploader", guests["Kit Harington"], *map(str, photos))
    picsaris("process")

    def without_ids(event_id: str) -> dict[str, tuple]:
        return {n: (r["consent"], r["reference_status"], r["reason"]) for n, r in listed(event_id).items()}

    assert without_ids(by_import) == without_ids(by_add)
    assert {row[1] for row in without_ids(by_import).values()} == {"ready"}
    app = App.from_env()
    version = app.engine.model_version
    for name in selfies:
        reference_add = app.repo.attendee_vector(added[name], version)
        reference_import = app.repo.attendee_vector(from_import[name], version)
        assert reference_add is not None and reference_import is not None
        assert np.allclose(reference_add, reference_import)
    found_by_add = found_by_name(json.loads(picsaris("matches", by_add, "--format", "json")))
    found_by_import = found_by_name(json.loads(picsaris("matches", by_import, "--format", "json")))
    assert found_by_import == found_by_add
    assert found_by_import["Barack Obama"] == {"obama_2.jpg", "group_obama_and_biden.jpg"}
    assert found_by_import["Kit Harington"] == {"kit_harington_1.jpg", "group_kit_with_rose.jpg"}


def test_a_guest_imported_late_finds_the_photos_already_published(picsaris_home, shared_photos, tmp_path) -> None:
    """The late-joiner step runs at import too; Dagster holds each imported guest's partitions,
    materialized with the asset's metadata."""
    import dagster as dg

    from picsaris_pipeline.orchestration.app import App

    event_id = picsaris("event", "create", "Late list").strip()
    kit = picsaris(
        "attendee",
        "add",
        event_id,
        "--name",
        "Kit Harington",
        "--selfie",
        str(shared_photos["kit_harington_2.jpg"].path),
    ).strip()
    picsaris("upload", event_id, "--uploader", kit, str(shared_photos["obama_2.jpg"].path))
    picsaris("process")
    folder = linked(tmp_path / "late", {"Barack_Obama.jpg": shared_photos["obama_1.jpg"].path})

    result = run("attendee", "import", event_id, str(folder))

    assert result.exit_code == 0, result.output
    obama = imported(result)["Barack Obama"]
    assert found_by_name(json.loads(picsaris("matches", event_id, "--format", "json")))["Barack Obama"] == {
        "obama_2.jpg"
    }
    instance = App.from_env().instance
    assert obama in instance.get_dynamic_partitions("attendees")
    for asset in ("attendee_reference", "attendee_matches"):
        assert obama in instance.get_materialized_partitions(dg.AssetKey(asset))
    event = instance.get_latest_materialization_event(dg.AssetKey("attendee_matches"))
    assert event is not None and event.asset_materialization is not None
    assert event.asset_materialization.metadata["photos_matched"].value == 1


def test_a_selfie_with_small_faces_behind_the_guest_is_taken_and_two_similar_faces_are_not(
    event_id, shared_photos, tmp_path
) -> None:
    from PIL import Image

    # Obama's selfie with Kit Harington's face small in a corner, as a bystander at a party.
    selfie = Image.open(shared_photos["obama_1.jpg"].path).convert("RGB")
    bystander = Image.open(shared_photos["kit_harington_1.jpg"].path).convert("RGB")
    bystander.thumbnail((selfie.width // 4, selfie.height // 4))
    selfie.paste(bystander, (0, 0))
    selfie.save(tmp_path / "Barack_Obama.jpg", quality=95)
    folder = linked(tmp_path / "selfies", {"Two_Friends.jpg": shared_photos["group_two_people.jpg"].path})
    (folder / "Barack_Obama.jpg").symlink_to(tmp_path / "Barack_Obama.jpg")

    from picsaris_pipeline.domain.imaging import decode_photo
    from picsaris_pipeline.faces.dlib_engine import DlibEngine

    faces = DlibEngine.shared().detect(decode_photo((tmp_path / "Barack_Obama.jpg").read_bytes()).image)
    assert len(faces) >= 2, "the bystander's face is found, so the rule is what is tested"

    result = run("attendee", "import", event_id, str(folder))

    assert result.exit_code == 0, result.output
    assert set(imported(result)) == {"Barack Obama"}
    assert "Two_Friends.jpg: Two Friends: 2 faces in the selfie" in result.stderr
    photo = shared_photos["obama_2.jpg"].path
    picsaris("upload", event_id, "--uploader", imported(result)["Barack Obama"], str(photo))
    picsaris("process")
    assert found_by_name(json.loads(picsaris("matches", event_id, "--format", "json"))) == {
        "Barack Obama": {"obama_2.jpg"}
    }  # the reference is the guest's face, not the bystander's
