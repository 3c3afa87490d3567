"""A local HTTP server speaking AWS Rekognition's JSON 1.1 protocol, for the operations we call.

Real boto3 clients talk to it through `endpoint_url`; every request body is validated against
botocore's own service model for the operation (a request AWS would refuse is refused here too,
and recorded in `validation_errors`). Faces are real: the server finds and compares them with
dlib, so matching on ../shared/faces behaves like a face service, and Similarity is reported on
Rekognition's 0-100 scale (100 - 36.4 x dlib distance: our 0.55 distance threshold is 80, the
service's default).

Faults are scripted per operation: `fail(operation, code, times)` makes the next calls answer with
that error (ThrottlingException, InternalServerError, AccessDeniedException, ...), as AWS does:
HTTP 400 (500 for InternalServerError) with `{"__type": code, "message": ...}`.

Races are scripted with `hold(operation, after=0)`: the next call of that operation (after letting
`after` calls through) is carried out (faces indexed, users searched) but its response waits until
the test calls `release()` on the hold, so a test can act in the middle of an engine call (withdraw
consent while IndexFaces is answering).
"""

from __future__ import annotations

import base64
import io
import json
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from botocore.session import get_session
from botocore.validate import ParamValidator
from PIL import Image

FACE_MODEL_VERSION = "7.0"
MAX_IMAGE_BYTES = 5 * 1024 * 1024


def similarity_from_distance(distance: float) -> float:
    return float(max(0.0, min(100.0, 100.0 - 36.4 * distance)))


class ServiceError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class StoredFace:
    face_id: str
    external_image_id: str | None
    box: dict[str, float]
    confidence: float
    vector: np.ndarray
    user_id: str | None = None


@dataclass
class Collection:
    face_model_version: str
    faces: dict[str, StoredFace] = field(default_factory=dict)
    users: dict[str, set[str]] = field(default_factory=dict)


@dataclass
class Hold:
    """The next call of an operation, done but not yet answered: `reached` is set once it is, and
    the answer goes out when the test calls `release()`."""

    operation: str
    after: int = 0  # calls of the operation let through before the one held
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


class RekognitionState:
    def __init__(self, face_model_version: str = FACE_MODEL_VERSION) -> None:
        self.face_model_version = face_model_version
        self.collections: dict[str, Collection] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.validation_errors: list[str] = []
        self.faults: dict[str, list[tuple[str, int]]] = defaultdict(list)
        self.access_keys: set[str] = set()  # the access key ids requests were signed with
        self.holds: dict[str, list[Hold]] = defaultdict(list)
        self.lock = threading.Lock()
        self._model = get_session().get_service_model("rekognition")

    def fail(self, operation: str, code: str, times: int = 1) -> None:
        status = 500 if code in ("InternalServerError", "ServiceUnavailableException") else 400
        with self.lock:
            self.faults[operation] += [(code, status)] * times

    def hold(self, operation: str, after: int = 0) -> Hold:
        held = Hold(operation, after)
        with self.lock:
            self.holds[operation].append(held)
        return held

    def count(self, operation: str) -> int:
        return sum(1 for name, _ in self.calls if name == operation)

    # -- dispatch ------------------------------------------------------------------------------
    def handle(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.calls.append((operation, params))
            if self.faults.get(operation):
                code, status = self.faults[operation].pop(0)
                raise ServiceError(code, f"scripted {code}", status)
        try:
            op_model = self._model.operation_model(operation)
        except Exception as error:
            raise ServiceError("UnknownOperationException", str(error)) from error
        report = ParamValidator().validate(params, op_model.input_shape)
        if report.has_errors():
            self.validation_errors.append(f"{operation}: {report.generate_report()}")
            raise ServiceError("ValidationException", report.generate_report())
        handler = getattr(self, f"op_{operation}", None)
        if handler is None:
            raise ServiceError("UnknownOperationException", f"{operation} is not served by this test server")
        answer = handler(params)
        with self.lock:
            held = self.holds[operation][0] if self.holds.get(operation) else None
            if held is not None and held.after > 0:
                held.after -= 1
                held = None
            elif held is not None:
                self.holds[operation].pop(0)
        if held is not None:
            held.reached.set()
            if not held.released.wait(timeout=60):
                raise ServiceError("InternalServerError", f"the test never released its hold on {operation}", 500)
        return answer

    def _collection(self, params: dict[str, Any]) -> Collection:
        collection = self.collections.get(params["CollectionId"])
        if collection is None:
            missing = params["CollectionId"]
            raise ServiceError("ResourceNotFoundException", f"The collection id: {missing} does not exist")
        return collection

    # -- operations ----------------------------------------------------------------------------
    def op_CreateCollection(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if params["CollectionId"] in self.collections:
                raise ServiceError("ResourceAlreadyExistsException", "The collection already exists")
            self.collections[params["CollectionId"]] = Collection(self.face_model_version)
        return {
            "StatusCode": 200,
            "CollectionArn": f"aws:rekognition:us-east-1:000000000000:collection/{params['CollectionId']}",
            "FaceModelVersion": self.face_model_version,
        }

    def op_DeleteCollection(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if self.collections.pop(params["CollectionId"], None) is None:
                raise ServiceError("ResourceNotFoundException", "The collection does not exist")
        return {"StatusCode": 200}

    def op_DescribeCollection(self, params: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(params)
        return {
            "FaceCount": len(collection.faces),
            "UserCount": len(collection.users),
            "FaceModelVersion": collection.face_model_version,
            "CollectionARN": f"aws:rekognition:us-east-1:000000000000:collection/{params['CollectionId']}",
        }

    def op_IndexFaces(self, params: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(params)
        data = base64.b64decode(params["Image"]["Bytes"])
        if len(data) > MAX_IMAGE_BYTES:
            raise ServiceError("ImageTooLargeException", "Image size is too large.")
        try:
            image = Image.open(io.BytesIO(data))
            if image.format not in ("JPEG", "PNG"):
                raise ValueError(image.format)
            image = image.convert("RGB")
        except Exception as error:
            raise ServiceError("InvalidImageFormatException", "Request has invalid image format") from error
        from picsaris_pipeline.faces.dlib_engine import DlibEngine

        engine = DlibEngine.shared()
        boxes = engine.detect(image)  # largest first, as MaxFaces keeps the largest
        vectors = engine.embed(image, boxes)
        keep = params.get("MaxFaces", 100)
        records, unindexed = [], []
        width, height = image.size
        for index, (box, vector) in enumerate(zip(boxes, vectors, strict=True)):
            bounding = {
                "Width": box.width / width,
                "Height": box.height / height,
                "Left": box.left / width,
                "Top": box.top / height,
            }
            detail = {"BoundingBox": bounding, "Confidence": 99.0}
            if index >= keep:
                unindexed.append({"Reasons": ["EXCEEDS_MAX_FACES"], "FaceDetail": detail})
                continue
            face = StoredFace(str(uuid.uuid4()), params.get("ExternalImageId"), bounding, 99.0, vector)
            with self.lock:
                collection.faces[face.face_id] = face
            records.append(
                {
                    "Face": {
                        "FaceId": face.face_id,
                        "BoundingBox": bounding,
                        "ImageId": str(uuid.uuid4()),
                        "ExternalImageId": face.external_image_id,
                        "Confidence": 99.0,
                        "IndexFacesModelVersion": collection.face_model_version,
                    },
                    "FaceDetail": detail,
                }
            )
        return {
            "FaceRecords": records,
            "FaceModelVersion": collection.face_model_version,
            "UnindexedFaces": unindexed,
        }

    def op_CreateUser(self, params: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(params)
        with self.lock:
            if params["UserId"] in collection.users:
                raise ServiceError("ConflictException", "A User with the same Id already exists")
            collection.users[params["UserId"]] = set()
        return {}

    def op_AssociateFaces(self, params: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(params)
        if params["UserId"] not in collection.users:
            raise ServiceError("ResourceNotFoundException", "The user does not exist")
        associated, failed = [], []
        with self.lock:
            for face_id in params["FaceIds"]:
                face = collection.faces.get(face_id)
                if face is None:
                    failed.append({"FaceId": face_id, "Reasons": ["FACE_NOT_FOUND"]})
                elif face.user_id not in (None, params["UserId"]):
                    reasons = ["ASSOCIATED_TO_A_DIFFERENT_USER"]
                    failed.append({"FaceId": face_id, "UserId": face.user_id, "Reasons": reasons})
                else:
                    face.user_id = params["UserId"]
                    collection.users[params["UserId"]].add(face_id)
                    associated.append({"FaceId": face_id})
        status = "ACTIVE" if collection.users[params["UserId"]] else "CREATED"
        return {"AssociatedFaces": associated, "UnsuccessfulFaceAssociations": failed, "UserStatus": status}

    def op_DeleteUser(self, params: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(params)
        with self.lock:
            if params["UserId"] not in collection.users:
                raise ServiceError("ResourceNotFoundException", "The user does not exist")
            for face_id in collection.users.pop(params["UserId"]):
                if face_id in collection.faces:
                    collection.faces[face_id].user_id = None
        return {}

    def op_DeleteFaces(self, params: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(params)
        deleted, failed = [], []
        with self.lock:
            for face_id in params["FaceIds"]:
                face = collection.faces.pop(face_id, None)
                if face is None:
                    failed.append({"FaceId": face_id, "Reasons": ["FACE_NOT_FOUND"]})
                    continue
                if face.user_id in collection.users:
                    collection.users[face.user_id].discard(face_id)
                deleted.append(face_id)
        return {"DeletedFaces": deleted, "UnsuccessfulFaceDeletions": failed}

    def _scores(self, collection: Collection, face_id: str) -> list[tuple[StoredFace, float]]:
        searched = collection.faces.get(face_id)
        if searched is None:
            raise ServiceError("InvalidParameterException", f"FaceId {face_id} is not in the collection")
        others = [face for face in collection.faces.values() if face.face_id != face_id]
        return [
            (face, similarity_from_distance(float(np.linalg.norm(face.vector - searched.vector)))) for face in others
        ]

    def op_SearchUsers(self, params: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(params)
        if "FaceId" not in params:
            raise ServiceError("InvalidParameterException", "this test server searches by FaceId only")
        threshold = params.get("UserMatchThreshold", 80.0)
        best: dict[str, float] = {}
        for face, similarity in self._scores(collection, params["FaceId"]):
            if face.user_id and similarity >= threshold:
                best[face.user_id] = max(best.get(face.user_id, 0.0), similarity)
        ranked = sorted(best.items(), key=lambda item: -item[1])[: params.get("MaxUsers", 100)]
        return {
            "UserMatches": [
                {"Similarity": similarity, "User": {"UserId": user, "UserStatus": "ACTIVE"}}
                for user, similarity in ranked
            ],
            "FaceModelVersion": collection.face_model_version,
            "SearchedFace": {"FaceId": params["FaceId"]},
        }

    def op_SearchFaces(self, params: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(params)
        threshold = params.get("FaceMatchThreshold", 80.0)
        matches = sorted(
            (pair for pair in self._scores(collection, params["FaceId"]) if pair[1] >= threshold),
            key=lambda pair: -pair[1],
        )[: params.get("MaxFaces", 4096)]
        return {
            "SearchedFaceId": params["FaceId"],
            "FaceMatches": [
                {
                    "Similarity": similarity,
                    "Face": {
                        "FaceId": face.face_id,
                        "BoundingBox": face.box,
                        "ExternalImageId": face.external_image_id,
                        "Confidence": face.confidence,
                    },
                }
                for face, similarity in matches
            ],
            "FaceModelVersion": collection.face_model_version,
        }

    def op_ListFaces(self, params: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(params)
        faces = sorted(collection.faces.values(), key=lambda face: face.face_id)
        start = int(params.get("NextToken") or 0)
        size = params.get("MaxResults", 1000)
        page = faces[start : start + size]
        body: dict[str, Any] = {
            "Faces": [
                {
                    "FaceId": face.face_id,
                    "BoundingBox": face.box,
                    "ExternalImageId": face.external_image_id,
                    "Confidence": face.confidence,
                    **({"UserId": face.user_id} if face.user_id else {}),
                }
                for face in page
            ],
            "FaceModelVersion": collection.face_model_version,
        }
        if start + size < len(faces):
            body["NextToken"] = str(start + size)
        return body


class _Handler(BaseHTTPRequestHandler):
    state: RekognitionState

    def do_POST(self) -> None:
        target = self.headers.get("X-Amz-Target", "")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            if not target.startswith("RekognitionService."):
                raise ServiceError("UnknownOperationException", f"unexpected X-Amz-Target {target!r}")
            authorization = self.headers.get("Authorization", "")
            if "AWS4-HMAC-SHA256 Credential=" not in authorization:
                raise ServiceError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
            self.state.access_keys.add(authorization.split("Credential=", 1)[1].split("/", 1)[0])
            params = json.loads(body or b"{}")
            answer, status = self.state.handle(target.removeprefix("RekognitionService."), params), 200
        except ServiceError as error:
            answer, status = {"__type": error.code, "message": error.message}, error.status
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if status != 200:
            self.send_header("x-amzn-ErrorType", answer["__type"])
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class RekognitionServer:
    """`with RekognitionServer() as server:` then point boto3 at `server.url`."""

    def __init__(self, face_model_version: str = FACE_MODEL_VERSION) -> None:
        self.state = RekognitionState(face_model_version)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> RekognitionServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> RekognitionServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cli_on_local_rekognition(monkeypatch: Any, server: RekognitionServer) -> None:
    """`picsaris` in this process on the Rekognition engine, its calls going to `server`."""
    monkeypatch.setenv("PICSARIS_FACE_ENGINE", "rekognition")
    # The local Rekognition server finds faces with one dlib in this process: one run at a time.
    monkeypatch.setenv("PICSARIS_WORKERS", "1")
    monkeypatch.setenv("PICSARIS_REKOGNITION_ENDPOINT_URL", server.url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
