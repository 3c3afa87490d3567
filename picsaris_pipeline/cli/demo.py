"""`picsaris demo`: a small wedding on the embedded default, or the whole flow on the user's own folders.

The wedding's photos are composed from images that may ship (demo_images/LICENSES.md): three
distinct people, Eileen Collins (scikit-image's public-domain NASA portrait), Grace Hopper (the
public-domain U.S. Navy portrait, bundled in demo_images/) and the man with the camera (scikit-image's
CC0 `camera.png`), pasted at different sizes onto scikit-image's CC0 and public-domain photos.
Collins, Hopper and Sam Rivera (whose selfie shows no face) are guests; the man with the camera never
signs up, so he is the stranger."""

from __future__ import annotations

import importlib.util
import io
import textwrap
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageEnhance

from picsaris_pipeline.cli.uploads import upload_files
from picsaris_pipeline.domain.model import Attendee, PhotoStatus, ReferenceStatus
from picsaris_pipeline.errors import ConfigurationError
from picsaris_pipeline.orchestration.app import App
from picsaris_pipeline.orchestration.runner import ProcessSummary, process_pending
from picsaris_pipeline.services.consent import withdraw_everywhere
from picsaris_pipeline.services.intake import register_attendee

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".heic", ".heif", ".webp"}
DEMO_IMAGES = Path(__file__).parent / "demo_images"
# Loose crops around each person's head (left, top, right, bottom) in their source image.
COLLINS_HEAD = (130, 30, 310, 215)  # astronaut.png
HOPPER_HEAD = (120, 60, 410, 390)  # demo_images/grace_hopper.jpg
STRANGER_HEAD = (150, 70, 310, 240)  # camera.png
LATE_JOINER = "Grace_Hopper"
WITHDRAWS = "Eileen Collins"
Box = tuple[int, int, int, int]
Placed = tuple[Image.Image, int, tuple[int, int]]  # a head, its width in the photo, its top-left corner


def _skimage_data() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError("scikit-image is not installed; it ships the demo's sample photos")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _save(image: Image.Image, path: Path, **options: Any) -> Path:
    image.save(path, **options)
    return path


def _heic_or_jpeg(image: Image.Image, stem: Path) -> Path:
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        return _save(image, stem.with_suffix(".heic"), quality=85)
    except (ImportError, KeyError, OSError, ValueError):  # a build of libheif without an encoder
        return _save(image, stem.with_suffix(".jpg"), quality=90)


def _selfie(portrait: Image.Image, head: Box, tilt: float, size: tuple[int, int]) -> Image.Image:
    """A sign-up selfie from a portrait: the head cropped, mirrored (front cameras mirror), tilted and
    relit, so the pipeline has to match a different image of the person, not the same pixels."""
    selfie = portrait.crop(head).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    selfie = selfie.rotate(tilt, resample=Image.Resampling.BICUBIC, fillcolor=(235, 235, 235))
    return ImageEnhance.Brightness(selfie.resize(size, Image.Resampling.LANCZOS)).enhance(1.12)


def _group(background: Image.Image, size: tuple[int, int], heads: Iterable[Placed]) -> Image.Image:
    """A group photo: each head, scaled to its width in pixels, pasted at its place on the background."""
    photo = background.resize(size, Image.Resampling.LANCZOS)
    for head, width, (left, top) in heads:
        height = round(head.height * width / head.width)
        photo.paste(head.resize((width, height), Image.Resampling.LANCZOS), (left, top))
    return photo


def _empty(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    return directory


def build_sample_inputs(folder: Path) -> tuple[Path, Path]:
    """Write the wedding's sign-up selfies, the late joiner's selfie (in `late-selfies/`) and the
    photos; returns (selfies_dir, photos_dir)."""
    data = _skimage_data()
    selfies, late, photos = (_empty(folder / name) for name in ("selfies", "late-selfies", "photos"))
    collins = Image.open(data / "astronaut.png").convert("RGB")
    hopper = Image.open(DEMO_IMAGES / "grace_hopper.jpg").convert("RGB")
    stranger = Image.open(data / "camera.png").convert("RGB")
    coffee = Image.open(data / "coffee.png").convert("RGB")
    rocket = Image.open(data / "rocket.jpg").convert("RGB")

    _save(_selfie(collins, COLLINS_HEAD, 6, (360, 370)), selfies / "Eileen_Collins.jpg", quality=88)
    # The guest taking the photos signs up with a "selfie" that shows no face: they can upload, but
    # are never matched.
    _save(coffee, selfies / "Sam_Rivera.jpg", quality=88)
    _save(_selfie(hopper, HOPPER_HEAD, -5, (340, 390)), late / f"{LATE_JOINER}.jpg", quality=88)

    collins_png = (data / "astronaut.png").read_bytes()
    (photos / "01_arrival.png").write_bytes(collins_png)
    # A closer shot from another phone (a different frame, not a re-encoding, or it would be caught
    # as a near-duplicate). Phones store portraits sideways and say so in EXIF; orientation 6 =
    # rotate 90° clockwise to view.
    exif = Image.Exif()
    exif[0x0112] = 6
    portrait = collins.crop((60, 0, 420, 360)).resize((900, 900), Image.Resampling.LANCZOS)
    _save(portrait.transpose(Image.Transpose.ROTATE_90), photos / "02_portrait_from_phone.jpg", quality=90, exif=exif)
    collins_head, hopper_head = collins.crop(COLLINS_HEAD), hopper.crop(HOPPER_HEAD)
    stranger_head = stranger.crop(STRANGER_HEAD)
    group = _group(
        rocket,
        (1800, 1200),
        [(collins_head, 360, (160, 380)), (hopper_head, 300, (760, 330)), (stranger_head, 240, (1350, 420))],
    )
    _heic_or_jpeg(group, photos / "03_group_photo")
    _save(coffee, photos / "04_coffee_break.png")
    # A guest and the stranger together, before the guest has signed up.
    garden = _group(
        Image.open(data / "grass.png").convert("RGB"),
        (1400, 900),
        [(hopper_head, 260, (180, 220)), (stranger_head, 320, (820, 200))],
    )
    _save(garden, photos / "05_garden_party.jpg", quality=90)
    # A transfer cut short: the first third of a JPEG.
    buffer = io.BytesIO()
    collins.save(buffer, format="JPEG", quality=90)
    (photos / "06_damaged_upload.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    _save(stranger, photos / "07_the_photographer.webp", quality=85)  # the stranger alone
    (photos / "08_arrival_again.png").write_bytes(collins_png)  # shared twice by the same guest
    return selfies, photos


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _sign_up(app: App, event_id: str, selfie_files: Iterable[Path], echo: Callable[..., None]) -> list[Attendee]:
    attendees = []
    for path in selfie_files:
        name = path.stem.replace("_", " ")
        attendees.append(register_attendee(app.repo, app.store, event_id, name, True, path.read_bytes(), path.name))
        echo(f"  {name} signs up with the selfie {path.name}")
    return attendees


def _upload(app: App, event_id: str, uploader: Attendee, photo_files: list[Path], echo: Callable[..., None]) -> None:
    echo(f"{uploader.name} uploads {len(photo_files)} photo(s) as a phone would:")
    for outcome in upload_files(app, event_id, uploader.id, photo_files):
        if outcome.error:
            echo(f"  refused {outcome.path.name}: {outcome.error}")
        elif outcome.duplicate_of and outcome.photo_id:
            earlier = app.repo.get_photo(outcome.photo_id).file_name
            echo(f"  {outcome.path.name}: same bytes as {earlier}, not stored twice")
        else:
            echo(f"  {outcome.path.name}")


def _process(app: App, event_id: str, echo: Callable[..., None]) -> ProcessSummary:
    echo(f"Running the asset graph (face model {app.engine.model_version}) ...")
    summary = process_pending(app.instance, app.repo, app.store, app.engine.model_version, event_id)
    for kind, key, message in summary.failures:
        echo(f"  FAILED {kind} {key}: {message}")
    return summary


def _show_attendees(app: App, event_id: str, echo: Callable[..., None]) -> None:
    echo("\nAttendees:")
    for attendee in app.repo.list_attendees(event_id):
        state = (
            "reference ready"
            if attendee.reference_status is ReferenceStatus.READY
            else f"{attendee.reference_status.value}: {attendee.reason}"
        )
        echo(f"  {attendee.name:<24} {state}")


def _show_photos(app: App, event_id: str, echo: Callable[..., None]) -> int:
    """Who was found in which photo; returns the number of matches."""
    echo("\nWho was found in which photo:")
    by_photo: dict[str, list[str]] = {}
    for match in app.repo.list_matches(event_id, model_version=app.shown_version(event_id)):
        by_photo.setdefault(match.photo_id, []).append(f"{match.attendee_name} ({match.similarity:.2f})")
    for photo in app.repo.list_photos(event_id):
        if photo.status is not PhotoStatus.PUBLISHED:
            echo(f"  {photo.file_name:<28} {photo.status.value}: {photo.reason}")
            continue
        found = ", ".join(by_photo.get(photo.id, [])) or "nobody we know"
        unmatched = (photo.face_count or 0) - len(by_photo.get(photo.id, []))
        if unmatched and photo.id in by_photo:
            found += f" + {unmatched} unmatched"
        echo(f"  {photo.file_name:<28} {photo.face_count} face(s): {found}")
    total = sum(len(v) for v in by_photo.values())
    echo(f"{total} match(es) in {len(by_photo)} photo(s).")
    return total


def _late_joiner(app: App, event_id: str, selfie_files: list[Path], echo: Callable[..., None]) -> bool:
    """Guests who sign up after the photos were processed: their run finds them in those photos."""
    echo("\nAfter the photos were processed, a late joiner signs up:")
    late = _sign_up(app, event_id, selfie_files, echo)
    summary = _process(app, event_id, echo)
    version = app.shown_version(event_id)
    for attendee in late:
        found = [m for m in app.repo.list_matches(event_id, model_version=version) if m.attendee_id == attendee.id]
        photos = ", ".join(f"{m.file_name} ({m.similarity:.2f})" for m in found) or "none"
        echo(f"  {attendee.name} is found in the photos taken before she signed up: {photos}")
    return summary.ok


def _withdraw(app: App, event_id: str, name: str, echo: Callable[..., None]) -> None:
    attendee = next(a for a in app.repo.list_attendees(event_id) if a.name == name)
    done = withdraw_everywhere(
        app.repo, app.store, app.engine, app.publisher(), attendee.id, app.face_engine.threshold()
    )
    echo(f"\n{name} withdraws her consent:")
    echo(textwrap.fill(f"{done.describe()}.", width=100, initial_indent="  ", subsequent_indent="  "))


def run_demo(app: App, selfies_dir: Path | None, photos_dir: Path | None, echo: Callable[..., None] = print) -> bool:
    """The sample wedding when no folders are given; otherwise sign-up, upload and matching on them."""
    late_selfies: list[Path] = []
    if selfies_dir is None or photos_dir is None:
        selfies_dir, photos_dir = build_sample_inputs(app.settings.home / "demo-inputs")
        late_selfies = _images(selfies_dir.parent / "late-selfies")
        echo(
            "Sample data: a small wedding composed from public-domain and CC0 images (Eileen Collins, "
            "Grace Hopper and a stranger with a camera; picsaris_pipeline/cli/demo_images/LICENSES.md)."
        )
    selfie_files, photo_files = _images(selfies_dir), _images(photos_dir)
    if not selfie_files or not photo_files:
        raise ConfigurationError(f"need at least one selfie in {selfies_dir} and one photo in {photos_dir}")

    event = app.repo.create_event(f"Picsaris demo {datetime.now(UTC):%Y-%m-%d %H:%M:%S}", app.engine.model_version)
    echo(f"Event {event.name!r}: {event.id}")
    attendees = _sign_up(app, event.id, selfie_files, echo)
    _upload(app, event.id, attendees[-1], photo_files, echo)
    ok = _process(app, event.id, echo).ok
    _show_attendees(app, event.id, echo)
    _show_photos(app, event.id, echo)
    if late_selfies:
        ok = _late_joiner(app, event.id, late_selfies, echo) and ok
        _withdraw(app, event.id, WITHDRAWS, echo)
        _show_photos(app, event.id, echo)
    echo(f"\nMore: picsaris matches {event.id} | picsaris photos {event.id} | the runs in the UI: ./dev ui")
    return ok
