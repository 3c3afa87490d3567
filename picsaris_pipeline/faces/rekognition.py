"""AWS Rekognition as a collection face engine (`PICSARIS_FACE_ENGINE=rekognition`).

Rekognition never returns embedding vectors: it matches on its side. Faces go into one collection
per (event, face model version) with `IndexFaces`; attendees are Rekognition users (`CreateUser` +
`AssociateFaces` of their selfie's face); a photo's faces are matched with `SearchUsers` by FaceId.
A collection is pinned to the face model it was created with, so a model upgrade means new
collections, named with the version, and re-indexing from our own stored images.

Images are sent as bytes: R2 objects are not S3 objects in AWS's region, and Rekognition takes at
most 5 MB, so a larger verified JPEG is re-encoded smaller first.

Errors are translated here: throttling and internal errors are retried by botocore's adaptive
mode (client-side rate limiting, exponential backoff with jitter) and, once its attempts are spent,
raised as RetryableError for the step's RetryPolicy; a bad image is BadInputError (the photo ends
`rejected`, never retried); anything else (access denied, a missing collection after we created
it) is ConfigurationError or PicsarisError and fails the step clearly.
"""

from __future__ import annotations

import io
import logging
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from PIL import Image

from picsaris_pipeline.errors import BadInputError, ConfigurationError, PicsarisError, RetryableError
from picsaris_pipeline.faces.engine import CollectionFaceEngine, EngineVersions, Enrollment, FaceBox, IndexedFace
from picsaris_pipeline.settings import Settings

logger = logging.getLogger("picsaris.rekognition")

# The face model AWS creates collections with today. Set PICSARIS_FACE_MODEL=rekognition-<n> when
# AWS moves on; a collection created under another version is refused, never mixed.
DEFAULT_FACE_MODEL = "7.0"
KNOWN_MODELS = (f"rekognition-{DEFAULT_FACE_MODEL}",)
MAX_IMAGE_BYTES = 5 * 1024 * 1024
# Rekognition's own default for SearchUsers/SearchFaces is 80 (of 100).
DEFAULT_MIN_SIMILARITY = 0.80
MAX_USERS_PER_FACE = 10  # candidates per face; one photo's 1:1 assignment picks among them
MAX_FACES_PER_PHOTO = 100
SELFIE_IMAGE_PREFIX = "selfie:"  # ExternalImageId of selfies, so a late joiner's search skips them
MAX_ATTEMPTS = 6  # botocore attempts per call (adaptive mode) before the step's own retry

RETRYABLE = {
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "InternalServerError",
    "ServiceUnavailableException",
    "LimitExceededException",
}
BAD_IMAGE = {"InvalidImageFormatException", "ImageTooLargeException", "InvalidParameterException"}
CONFIGURATION = {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"}


def _client_error_code(error: Exception) -> str | None:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


def translate(error: Exception, operation: str, image_call: bool = False) -> Exception:
    """One botocore error as a project error; image_call: the request carried our image bytes."""
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

    if isinstance(error, ClientError):
        code = _client_error_code(error) or "Unknown"
        message = error.response.get("Error", {}).get("Message") or str(error)
        if code in RETRYABLE:
            return RetryableError(f"Rekognition {operation}: {code} (still after {MAX_ATTEMPTS} attempts): {message}")
        if image_call and code in BAD_IMAGE:
            return BadInputError(f"Rekognition cannot use this image ({code}): {message}")
        if code in CONFIGURATION:
            return ConfigurationError(
                f"Rekognition {operation}: {code}: {message} (check the AWS credentials and the IAM policy)"
            )
        return PicsarisError(f"Rekognition {operation} failed: {code}: {message}")
    if isinstance(error, ConnectionError | HTTPClientError):
        return RetryableError(f"Rekognition {operation}: cannot reach the service: {error}")
    if isinstance(error, BotoCoreError):
        return ConfigurationError(f"Rekognition {operation}: {error}")
    return error


def fit_for_rekognition(jpeg: bytes, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The image as JPEG bytes within Rekognition's size limit: lower quality first, then smaller."""
    if len(jpeg) <= limit:
        return jpeg
    image: Image.Image = Image.open(io.BytesIO(jpeg))
    image.load()
    for quality in (85, 75):
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=quality)
        if out.tell() <= limit:
            return out.getvalue()
    while True:
        image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=75)
        if out.tell() <= limit:
            return out.getvalue()


def _box(bounding: dict[str, float], size: tuple[int, int], confidence: float) -> FaceBox:
    """Rekognition's box is in ratios of the image; ours is in pixels, clipped to the image."""
    width, height = size
    left = max(0, round(bounding["Left"] * width))
    top = max(0, round(bounding["Top"] * height))
    right = min(width, round((bounding["Left"] + bounding["Width"]) * width))
    bottom = min(height, round((bounding["Top"] + bounding["Height"]) * height))
    return FaceBox(left, top, right, bottom, confidence / 100.0)


def detector_version_for(model_version: str) -> str:
    """IndexFaces both detects and indexes, with the collection's face model: detection is versioned
    with it (a new face model re-detects, into a new collection)."""
    if not re.fullmatch(r"rekognition-\d+(\.\d+)*", model_version):
        raise ConfigurationError(
            f"unknown face model {model_version!r} for engine rekognition; expected rekognition-<FaceModelVersion>, "
            f"e.g. {KNOWN_MODELS[0]}"
        )
    return f"rekognition-index-faces-{model_version.removeprefix('rekognition-')}"


def _safe_id(value: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.\-]", "-", value)


class RekognitionEngine(CollectionFaceEngine):
    name = "rekognition"
    default_min_similarity = DEFAULT_MIN_SIMILARITY
    _instances: ClassVar[dict[tuple[Any, ...], RekognitionEngine]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, client: Any, model_version: str | None = None, collection_prefix: str = "picsaris") -> None:
        version = model_version or KNOWN_MODELS[0]
        self.client = client
        self.model_version = version
        self.detector_version = detector_version_for(version)
        self.face_model_version = version.removeprefix("rekognition-")
        self.collection_prefix = _safe_id(collection_prefix)
        self._ready_collections: set[str] = set()

    @classmethod
    def offered_versions(cls) -> list[str]:
        return list(KNOWN_MODELS)

    @classmethod
    def versions_for(cls, model_version: str | None) -> EngineVersions:
        version = model_version or KNOWN_MODELS[0]
        return EngineVersions(cls.name, detector_version_for(version), version)

    @classmethod
    def for_settings(cls, settings: Settings | None, model_version: str | None) -> RekognitionEngine:
        return cls.shared(settings or Settings.from_env(), model_version)

    @classmethod
    def shared(cls, settings: Settings, model_version: str | None = None) -> RekognitionEngine:
        key = (
            settings.aws_region,
            settings.rekognition_endpoint_url,
            settings.rekognition_collection_prefix,
            model_version or KNOWN_MODELS[0],
        )
        with cls._lock:
            if key not in cls._instances:
                if bool(settings.rekognition_access_key_id) != bool(settings.rekognition_secret_access_key):
                    raise ConfigurationError(
                        "set both PICSARIS_REKOGNITION_ACCESS_KEY_ID and "
                        "PICSARIS_REKOGNITION_SECRET_ACCESS_KEY, or neither"
                    )
                client = make_client(
                    settings.aws_region,
                    settings.rekognition_endpoint_url,
                    access_key_id=settings.rekognition_access_key_id,
                    secret_access_key=settings.rekognition_secret_access_key,
                )
                cls._instances[key] = cls(
                    client,
                    model_version,
                    settings.rekognition_collection_prefix,
                )
            return cls._instances[key]

    # -- calls -------------------------------------------------------------------------------
    def _call(self, operation: str, image_call: bool = False, **params: Any) -> dict[str, Any]:
        method: Callable[..., dict[str, Any]] = getattr(self.client, _snake(operation))
        try:
            return method(**params)
        except Exception as error:  # botocore raises many unrelated classes; translate() sorts them
            translated = translate(error, operation, image_call)
            if translated is error:
                raise
            raise translated from error

    def collection_id(self, event_id: str) -> str:
        return f"{self.collection_prefix}-{event_id}-v{self.face_model_version.replace('.', '_')}"

    def _collection(self, event_id: str) -> str:
        """The event's collection under this model version, created on first use and checked once per process."""
        collection = self.collection_id(event_id)
        if collection in self._ready_collections:
            return collection
        from botocore.exceptions import ClientError

        try:
            created = self.client.create_collection(CollectionId=collection, Tags={"picsaris:event": event_id})
            model = created.get("FaceModelVersion")
            logger.info("created Rekognition collection %s (face model %s)", collection, model)
        except ClientError as error:
            if _client_error_code(error) != "ResourceAlreadyExistsException":
                raise translate(error, "CreateCollection") from error
            model = self._call("DescribeCollection", CollectionId=collection).get("FaceModelVersion")
        except Exception as error:
            raise translate(error, "CreateCollection") from error
        if model and model != self.face_model_version:
            raise ConfigurationError(
                f"Rekognition collection {collection} uses face model {model}, but this deployment is configured "
                f"for {self.face_model_version}: set PICSARIS_FACE_MODEL=rekognition-{model} and re-embed "
                f"(see the model-version runbook); versions are never mixed"
            )
        self._ready_collections.add(collection)
        return collection

    # -- photos ------------------------------------------------------------------------------
    def index_photo(self, event_id: str, photo_id: str, jpeg: bytes, size: tuple[int, int]) -> list[IndexedFace]:
        collection = self._collection(event_id)
        response = self._index_faces(collection, jpeg, photo_id, MAX_FACES_PER_PHOTO)
        faces = [
            IndexedFace(
                _box(record["Face"]["BoundingBox"], size, record["Face"].get("Confidence", 0.0)),
                record["Face"]["FaceId"],
            )
            for record in response.get("FaceRecords", [])
        ]
        return sorted(faces, key=lambda face: face.box.area, reverse=True)

    def _index_faces(self, collection: str, jpeg: bytes, external_id: str, max_faces: int) -> dict[str, Any]:
        """IndexFaces on one image into the collection, its face model checked against ours."""
        response = self._call(
            "IndexFaces",
            image_call=True,
            CollectionId=collection,
            Image={"Bytes": fit_for_rekognition(jpeg)},
            ExternalImageId=external_id,
            DetectionAttributes=["DEFAULT"],
            MaxFaces=max_faces,
            QualityFilter="AUTO",
        )
        self._check_model(response, collection)
        return response

    def _check_model(self, response: dict[str, Any], collection: str) -> None:
        model = response.get("FaceModelVersion")
        if model and model != self.face_model_version:
            raise ConfigurationError(
                f"Rekognition answered with face model {model} for {collection}, expected {self.face_model_version}"
            )

    def search_users(self, event_id: str, external_face_id: str, min_similarity: float) -> list[tuple[str, float]]:
        response = self._call(
            "SearchUsers",
            CollectionId=self._collection(event_id),
            FaceId=external_face_id,
            UserMatchThreshold=float(min_similarity * 100.0),
            MaxUsers=MAX_USERS_PER_FACE,
        )
        return [
            (match["User"]["UserId"], float(match["Similarity"]) / 100.0)
            for match in response.get("UserMatches", [])
            if match.get("User", {}).get("UserStatus", "ACTIVE") == "ACTIVE"
        ]

    def search_photos(self, event_id: str, external_face_id: str, min_similarity: float) -> set[str]:
        response = self._call(
            "SearchFaces",
            CollectionId=self._collection(event_id),
            FaceId=external_face_id,
            FaceMatchThreshold=float(min_similarity * 100.0),
            MaxFaces=4096,
        )
        return {
            match["Face"]["ExternalImageId"]
            for match in response.get("FaceMatches", [])
            if match.get("Face", {}).get("ExternalImageId")
            and not match["Face"]["ExternalImageId"].startswith(SELFIE_IMAGE_PREFIX)
        }

    # -- attendees ---------------------------------------------------------------------------
    def enroll(self, event_id: str, attendee_id: str, jpeg: bytes) -> Enrollment:
        from botocore.exceptions import ClientError

        collection = self._collection(event_id)
        # Rekognition keeps the largest face: the person taking the selfie.
        response = self._index_faces(collection, jpeg, f"{SELFIE_IMAGE_PREFIX}{attendee_id}", 1)
        records = response.get("FaceRecords", [])
        if not records:
            raise BadInputError("no face found in the selfie")
        face_id = records[0]["Face"]["FaceId"]
        try:
            self.client.create_user(CollectionId=collection, UserId=attendee_id, ClientRequestToken=attendee_id)
        except ClientError as error:
            # A re-run: the user exists already (a retry of the same request, or an earlier enrolment).
            if _client_error_code(error) not in ("ConflictException", "IdempotentParameterMismatchException"):
                raise translate(error, "CreateUser") from error
        except Exception as error:
            raise translate(error, "CreateUser") from error
        associated = self._call("AssociateFaces", CollectionId=collection, UserId=attendee_id, FaceIds=[face_id])
        failures = associated.get("UnsuccessfulFaceAssociations") or []
        if failures:
            reasons = ", ".join(failures[0].get("Reasons") or ["unknown reason"])
            raise BadInputError(f"Rekognition would not associate the selfie's face with the attendee: {reasons}")
        faces_in_image = len(records) + len(response.get("UnindexedFaces", []))
        return Enrollment(attendee_id, face_id, faces_in_image)

    # -- erasure -----------------------------------------------------------------------------
    # These never create a collection: where the event's collection does not exist, nothing is stored.
    def _erase(self, operation: str, **params: Any) -> dict[str, Any] | None:
        """A delete or listing call; None when the collection (or the user) is already gone."""
        from botocore.exceptions import ClientError

        try:
            return getattr(self.client, _snake(operation))(**params)
        except ClientError as error:
            if _client_error_code(error) == "ResourceNotFoundException":
                return None
            raise translate(error, operation) from error
        except Exception as error:
            raise translate(error, operation) from error

    def forget_faces(self, event_id: str, external_face_ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(external_face_ids))
        for start in range(0, len(ids), 4096):
            if (
                self._erase("DeleteFaces", CollectionId=self.collection_id(event_id), FaceIds=ids[start : start + 4096])
                is None
            ):
                return

    def forget_photo(self, event_id: str, photo_id: str, known_face_ids: Sequence[str]) -> None:
        """Recorded faces, plus any with this photo's ExternalImageId that a crashed run indexed but never
        recorded (found by listing the collection: slow on a big one, so erasure only)."""
        ids = list(known_face_ids)
        params: dict[str, Any] = {"CollectionId": self.collection_id(event_id), "MaxResults": 4096}
        while True:
            page = self._erase("ListFaces", **params)
            if page is None:
                return
            ids += [face["FaceId"] for face in page.get("Faces", []) if face.get("ExternalImageId") == photo_id]
            if not page.get("NextToken"):
                break
            params["NextToken"] = page["NextToken"]
        if ids:
            self.forget_faces(event_id, ids)

    def drop_collection(self, event_id: str) -> None:
        self._erase("DeleteCollection", CollectionId=self.collection_id(event_id))
        self._ready_collections.discard(self.collection_id(event_id))

    def forget_user(self, event_id: str, external_user_id: str) -> None:
        self._erase("DeleteUser", CollectionId=self.collection_id(event_id), UserId=external_user_id)


def _snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


def make_client(
    region: str | None,
    endpoint_url: str | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> Any:
    """A boto3 Rekognition client with adaptive retries (rate limiting + backoff with jitter), on its
    own keys when given, else boto3's default credential chain."""
    import boto3.session
    from botocore.config import Config

    if not region and not endpoint_url:
        raise ConfigurationError("PICSARIS_FACE_ENGINE=rekognition needs AWS_REGION (or AWS_DEFAULT_REGION)")
    config = Config(
        retries={"mode": "adaptive", "max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=16,
    )
    session = boto3.session.Session(aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key)
    return session.client("rekognition", region_name=region or "us-east-1", endpoint_url=endpoint_url, config=config)
