"""Guest-list import (`picsaris attendee import`): hundreds of sign-ups in one process.

`picsaris attendee add` once per guest pays the interpreter, Dagster and database start-up for
every guest (400 guests took 931 s), and their selfies still wait for `picsaris process`. Here the
list is read once, each selfie is checked with the engine loaded once, the guests are signed up
with the same intake function `attendee add` uses, and the service functions of their attendee
assets (reference, then the late-joiner match) run here, recorded on the Dagster instance as
materializations of those assets' partitions. A file that cannot be a guest's selfie is refused
with its reason and the rest go on.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain import imaging
from picsaris_pipeline.domain.model import Attendee
from picsaris_pipeline.errors import BadInputError, PicsarisError
from picsaris_pipeline.faces.engine import FaceEngine
from picsaris_pipeline.realtime import RealtimePublisher
from picsaris_pipeline.services.attendees import build_reference, match_late_joiner
from picsaris_pipeline.services.engine_strategy import strategy_for
from picsaris_pipeline.services.intake import register_attendee
from picsaris_pipeline.storage import ObjectStore

# The columns of `picsaris attendee import`'s stdout and of `picsaris attendee list`.
IMPORT_COLUMNS = ("attendee_id", "name")
ATTENDEE_COLUMNS = ("attendee_id", "name", "consent", "reference_status", "reason")

_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True)
class GuestEntry:
    """One guest as the list gives them; `source` names the file (or CSV line) in reports."""

    source: str
    name: str
    selfie: Path
    consent: bool = True


@dataclass(frozen=True)
class Refusal:
    source: str
    reason: str


@dataclass
class ImportResult:
    imported: list[Attendee] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # attendee runs that failed


def name_from_file(path: Path) -> str:
    """`Jane_Doe.jpg` -> "Jane Doe": underscores are spaces, runs of whitespace collapse."""
    return " ".join(path.stem.replace("_", " ").split())


def _name_key(name: str) -> str:
    # "Jane Doe", "jane  doe" and "Jane_Doe" are one guest: a list must not sign them up twice.
    return re.sub(r"\s+", " ", name.replace("_", " ")).strip().casefold()


def read_folder(folder: Path) -> list[GuestEntry]:
    """One guest per file, named after the file; hidden files and sub-folders are not guests."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise BadInputError(f"{folder} holds no files: nothing to import")
    return [GuestEntry(str(path), name_from_file(path), path) for path in files]


def _consent(value: str | None) -> bool | None:
    text = (value or "").strip().casefold()
    if text == "" or text in _YES:
        return True  # as `attendee add` without --no-consent
    if text in _NO:
        return False
    return None


def read_csv(path: Path) -> tuple[list[GuestEntry], list[Refusal]]:
    """`name,selfie[,consent]` with a header row; selfie paths relative to the CSV's folder. A row
    that cannot be read is refused with its line number; a file without those columns is unusable."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadInputError(f"{path} is not a UTF-8 CSV: {error}") from error
    reader = csv.DictReader(text.splitlines())
    columns = {(c or "").strip().casefold(): c for c in reader.fieldnames or []}
    if "name" not in columns or "selfie" not in columns:
        raise BadInputError(f"{path} needs a header row with the columns name,selfie[,consent]")
    entries: list[GuestEntry] = []
    refused: list[Refusal] = []
    for row in reader:
        source = f"{path.name} line {reader.line_num}"
        name = " ".join((row.get(columns["name"]) or "").split())
        selfie = (row.get(columns["selfie"]) or "").strip()
        consent = _consent(row.get(columns["consent"])) if "consent" in columns else True
        if None in row:
            refused.append(Refusal(source, f"more columns than the header's {len(columns)}"))
        elif not name:
            refused.append(Refusal(source, "no name"))
        elif not selfie:
            refused.append(Refusal(source, f"{name}: no selfie file"))
        elif consent is None:
            refused.append(Refusal(source, f"{name}: consent must be yes or no, not {row[columns['consent']]!r}"))
        else:
            entries.append(GuestEntry(f"{source} ({selfie})", name, path.parent / selfie, consent))
    if not entries and not refused:
        raise BadInputError(f"{path} lists no guests")
    return entries, refused


def read_guest_list(path: Path) -> tuple[list[GuestEntry], list[Refusal]]:
    """A folder of selfies or a CSV guest list."""
    if path.is_dir():
        return read_folder(path), []
    if path.is_file():
        return read_csv(path)
    raise BadInputError(f"{path} is neither a folder of selfies nor a CSV file")


# A selfie with a second face at least this share of the largest face's width is refused: YuNet finds
# the small faces of people in the background, and a selfie at a party often has some (on lfw-dev's
# photos, counting every face refused 55 of 400 guests' selfies). The reference takes the largest face,
# as `attendee add` does.
SECOND_FACE_RATIO = 0.5


def selfie_problem(engine: FaceEngine, data: bytes, consent: bool) -> str | None:
    """Why these bytes cannot be this guest's selfie, or None. Only a consenting guest's selfie is
    searched for faces (no consent, no face processing); an engine without a local detector
    (Rekognition) reports a faceless selfie itself when the reference is built."""
    try:
        image = imaging.decode_photo(data).image
    except BadInputError as error:
        return f"not an image we can read: {error}"
    found = strategy_for(engine).selfie_faces(image) if consent else None
    if found is None:
        return None
    boxes = sorted(found, key=lambda box: box.width, reverse=True)
    if not boxes:
        return "no face found in the selfie"
    if len(boxes) > 1 and boxes[1].width >= SECOND_FACE_RATIO * boxes[0].width:
        # From a list nobody is there to say which of two similar faces is the guest.
        return f"{len(boxes)} faces in the selfie: which one is the guest is unclear"
    return None  # one face, or one that dominates a few small ones behind it: the reference takes the largest


def sign_up_guests(
    repo: Repository,
    store: ObjectStore,
    engine: FaceEngine,
    event_id: str,
    entries: Sequence[GuestEntry],
    progress: Progress | None = None,
    on_refused: Callable[[Refusal], Any] | None = None,
) -> tuple[list[Attendee], list[Refusal]]:
    """Check each selfie and sign its guest up (register_attendee, as `attendee add` does). A name
    already in the event or earlier in the list is refused, so re-running an import adds nobody twice."""
    repo.get_event(event_id)  # an unknown event is unusable input, before any file is read
    taken = {_name_key(a.name): a.id for a in repo.list_attendees(event_id)}
    seen: dict[str, str] = {}
    added: list[Attendee] = []
    refused: list[Refusal] = []

    def refuse(entry: GuestEntry, reason: str) -> None:
        refusal = Refusal(entry.source, reason)
        refused.append(refusal)
        if on_refused:
            on_refused(refusal)

    for done, entry in enumerate(entries, start=1):
        key = _name_key(entry.name)
        try:
            if key in seen:
                refuse(entry, f"{entry.name}: the name appears twice (first at {seen[key]})")
            elif key in taken:
                refuse(entry, f"{entry.name}: already signed up as attendee {taken[key]}")
            elif not entry.selfie.is_file():
                refuse(entry, f"{entry.name}: no such file {entry.selfie}")
            else:
                data = entry.selfie.read_bytes()
                problem = selfie_problem(engine, data, entry.consent)
                if problem:
                    refuse(entry, f"{entry.name}: {problem}")
                else:
                    added.append(
                        register_attendee(repo, store, event_id, entry.name, entry.consent, data, entry.selfie.name)
                    )
                    seen[key] = entry.source
        except (BadInputError, OSError) as error:
            refuse(entry, f"{entry.name}: {error}")
        if progress:
            progress("checking selfies", done, len(entries))
    return added, refused


@dataclass(frozen=True)
class BuiltReference:
    """What one attendee's two steps produced, as their assets would record it."""

    attendee: Attendee
    details: dict[str, Any]
    timings: dict[str, Any]
    photos_matched: list[str]


class ReferenceLog(Protocol):
    """Where the orchestrator records references built outside a run (runner.ImportedReferences)."""

    def add_partitions(self, attendee_ids: Sequence[str]) -> None: ...

    def record(self, built: BuiltReference) -> None: ...

    def finish(self, event_ids: Sequence[str]) -> list[tuple[str, str, str]]: ...


def build_references(
    repo: Repository,
    store: ObjectStore,
    engine: FaceEngine,
    publisher: RealtimePublisher,
    min_similarity: float,
    attendees: Sequence[Attendee],
    progress: Progress | None = None,
    on_built: Callable[[BuiltReference], Any] | None = None,
) -> list[tuple[str, str, str]]:
    """Each attendee's reference, then their late-joiner matches: the two service calls of the
    attendee assets, here in a loop, so one engine load serves the whole list instead of one Dagster
    run per guest (~3 s each on the shared two cores). A guest whose steps raise stays pending for
    `picsaris process`; the failures are returned as (kind, attendee id, error)."""
    failures: list[tuple[str, str, str]] = []
    for done, attendee in enumerate(attendees, start=1):
        try:
            built, details, timings = build_reference(repo, store, engine, attendee.id)
            found = match_late_joiner(repo, publisher, attendee.id, engine.model_version, min_similarity, engine)
        except PicsarisError as error:
            failures.append(("attendee", attendee.id, f"{error} (`picsaris process` tries it again)"))
        else:
            if on_built:
                on_built(BuiltReference(repo.get_attendee(built.id), details, timings, found))
        if progress:
            progress("building references", done, len(attendees))
    return failures


def import_guests(
    repo: Repository,
    store: ObjectStore,
    engine: FaceEngine,
    publisher: RealtimePublisher,
    min_similarity: float,
    log: ReferenceLog,
    event_id: str,
    entries: Sequence[GuestEntry],
    progress: Progress | None = None,
    on_refused: Callable[[Refusal], Any] | None = None,
) -> ImportResult:
    """Sign the guests up, then build their references in this process, so the import ends with
    every accepted guest ready to match, recorded in `log` as their attendee assets would be."""
    added, refused = sign_up_guests(repo, store, engine, event_id, entries, progress, on_refused)
    result = ImportResult(refused=refused)
    if not added:
        return result
    log.add_partitions([a.id for a in added])
    result.failures = build_references(repo, store, engine, publisher, min_similarity, added, progress, log.record)
    result.failures += log.finish([event_id])
    result.imported = [repo.get_attendee(a.id) for a in added]
    return result


def attendee_row(attendee: Attendee) -> dict[str, Any]:
    return {
        "attendee_id": attendee.id,
        "name": attendee.name,
        "consent": attendee.consent,
        "reference_status": attendee.reference_status.value,
        "reason": attendee.reason or "",
    }
