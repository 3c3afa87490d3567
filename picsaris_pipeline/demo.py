"""`picsaris demo`: the whole flow on the embedded default, on sample images that ship with
scikit-image (its public-domain NASA portrait of astronaut Eileen Collins, plus photos with no
face), or on the user's own folders."""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageEnhance

from picsaris_pipeline.app import App
from picsaris_pipeline.domain import PhotoStatus, ReferenceStatus
from picsaris_pipeline.errors import ConfigurationError
from picsaris_pipeline.runner import process_pending
from picsaris_pipeline.services.intake import register_attendee
from picsaris_pipeline.uploads import upload_files

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".heic", ".heif", ".webp"}
ASTRONAUT_FACE = (130, 30, 310, 215)  # a loose crop around her face in astronaut.png


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


def build_sample_inputs(folder: Path) -> tuple[Path, Path]:
    """Write the sample selfies and photos; returns (selfies_dir, photos_dir)."""
    data = _skimage_data()
    selfies, photos = folder / "selfies", folder / "photos"
    for directory in (selfies, photos):
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.iterdir():
            old.unlink()
    astronaut = Image.open(data / "astronaut.png").convert("RGB")

    # Sign-up selfie: her face cropped, mirrored (front cameras mirror), tilted and relit, so the
    # pipeline has to match a different image of her, not the same pixels.
    selfie = astronaut.crop(ASTRONAUT_FACE).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    selfie = selfie.rotate(6, resample=Image.Resampling.BICUBIC, fillcolor=(235, 235, 235))
    selfie = ImageEnhance.Brightness(selfie.resize((360, 370), Image.Resampling.LANCZOS)).enhance(1.12)
    _save(selfie, selfies / "Eileen_Collins.jpg", quality=88)
    # A guest whose "selfie" shows no face: signed up, can upload, but is never matched.
    _save(Image.open(data / "coffee.png").convert("RGB"), selfies / "Sam_Rivera.jpg", quality=88)

    astronaut_png = (data / "astronaut.png").read_bytes()
    (photos / "01_launch_day.png").write_bytes(astronaut_png)
    # A closer shot from another phone (a different frame, not a re-encoding, or it would be caught
    # as a near-duplicate). Phones store portraits sideways and say so in EXIF; orientation 6 =
    # rotate 90° clockwise to view.
    exif = Image.Exif()
    exif[0x0112] = 6
    portrait = astronaut.crop((60, 0, 420, 360)).resize((900, 900), Image.Resampling.LANCZOS)
    _save(portrait.transpose(Image.Transpose.ROTATE_90), photos / "02_portrait_from_phone.jpg", quality=90, exif=exif)
    crew = Image.new("RGB", (1800, 1000), (22, 28, 40))
    crew.paste(astronaut.resize((420, 420), Image.Resampling.LANCZOS), (160, 380))
    rocket = Image.open(data / "rocket.jpg").convert("RGB")
    crew.paste(rocket.resize((900, 600), Image.Resampling.LANCZOS), (780, 200))
    _heic_or_jpeg(crew, photos / "03_crew_and_rocket")
    _save(Image.open(data / "coffee.png").convert("RGB"), photos / "04_coffee_break.png")
    _save(rocket, photos / "05_rocket_launch.webp", quality=85)
    # A transfer cut short: the first third of a JPEG.
    buffer = io.BytesIO()
    astronaut.save(buffer, format="JPEG", quality=90)
    (photos / "06_damaged_upload.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    (photos / "07_launch_day_again.png").write_bytes(astronaut_png)  # shared twice by the same guest
    return selfies, photos


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def run_demo(app: App, selfies_dir: Path | None, photos_dir: Path | None, echo: Callable[..., None] = print) -> bool:
    if selfies_dir is None or photos_dir is None:
        selfies_dir, photos_dir = build_sample_inputs(app.settings.home / "demo-inputs")
        echo("Sample data: scikit-image's public-domain astronaut portrait (Eileen Collins) and photos without faces.")
    selfie_files, photo_files = _images(selfies_dir), _images(photos_dir)
    if not selfie_files or not photo_files:
        raise ConfigurationError(f"need at least one selfie in {selfies_dir} and one photo in {photos_dir}")

    repo = app.repo
    event = repo.create_event(f"Picsaris demo {datetime.now(UTC):%Y-%m-%d %H:%M:%S}", app.engine.model_version)
    echo(f"Event {event.name!r}: {event.id}")
    attendees = [
        register_attendee(repo, app.store, event.id, path.stem.replace("_", " "), True, path.read_bytes(), path.name)
        for path in selfie_files
    ]
    uploader = attendees[-1]
    echo(
        f"Signed up {len(attendees)} attendee(s); {uploader.name} uploads {len(photo_files)} photo(s) as a phone would."
    )
    for outcome in upload_files(app, event.id, uploader.id, photo_files):
        if outcome.error:
            echo(f"  refused {outcome.path.name}: {outcome.error}")
        elif outcome.duplicate_of:
            echo(f"  {outcome.path.name}: same bytes as an earlier upload, not stored twice")

    echo(f"Running the asset graph (face model {app.engine.model_version}) ...")
    summary = process_pending(app.instance, repo, app.store, app.engine.model_version, event.id)

    echo("\nAttendees:")
    for attendee in repo.list_attendees(event.id):
        state = (
            "reference ready"
            if attendee.reference_status is ReferenceStatus.READY
            else f"{attendee.reference_status.value}: {attendee.reason}"
        )
        echo(f"  {attendee.name:<24} {state}")
    echo("\nWho was found in which photo:")
    by_photo: dict[str, list[str]] = {}
    for match in repo.list_matches(event.id, model_version=app.shown_version(event.id)):
        by_photo.setdefault(match.photo_id, []).append(f"{match.attendee_name} ({match.similarity:.2f})")
    for photo in repo.list_photos(event.id):
        if photo.status is PhotoStatus.PUBLISHED:
            found = ", ".join(by_photo.get(photo.id, [])) or "nobody we know"
            echo(f"  {photo.file_name:<28} {photo.face_count} face(s): {found}")
        else:
            echo(f"  {photo.file_name:<28} {photo.status.value}: {photo.reason}")
    for kind, key, message in summary.failures:
        echo(f"  FAILED {kind} {key}: {message}")
    total = sum(len(v) for v in by_photo.values())
    echo(f"\n{total} match(es) in {len(by_photo)} photo(s).")
    echo(f"More: picsaris matches {event.id} | picsaris photos {event.id} | the runs in the UI: ./dev ui")
    return summary.ok
