"""An ObjectStore on the S3 API: Cloudflare R2 in production, moto's S3 server in tests.

botocore errors are translated here, at the boundary, into picsaris_pipeline.errors so callers only
decide between "retry later", "this input is bad", "not found" and "misconfigured".
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Iterator, Sequence
from datetime import UTC
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from picsaris_pipeline.errors import (
    ConfigurationError,
    NotFoundError,
    PicsarisError,
    RetryableError,
)
from picsaris_pipeline.storage.base import (
    MAX_PAGE_SIZE,
    MAX_PRESIGN_SECONDS,
    ObjectInfo,
    ObjectStore,
    UploadTicket,
    check_delete_prefix,
    check_page_size,
    ticket_expiry,
    validate_key,
)

# HEAD responses have no body, so their error code is the bare status ("404", "403").
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
_RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "SlowDown",
        "TooManyRequests",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "429",
    }
)
_CONFIGURATION_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "NoSuchBucket",
        "InvalidBucketName",
        "PermanentRedirect",  # bucket lives in another region / endpoint
        "AuthorizationHeaderMalformed",  # wrong region in the signature
        "403",
    }
)


def _client_error(error: ClientError, target: str) -> PicsarisError:
    details = error.response.get("Error", {})
    code = str(details.get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    # Only the code and S3's own message: never the request, which carries signed headers.
    message = f"{error.operation_name} {target} failed: {code} {details.get('Message', '')}".rstrip()
    if code in _NOT_FOUND_CODES:
        return NotFoundError(message)
    if code in _CONFIGURATION_CODES:
        return ConfigurationError(message)
    if code in _RETRYABLE_CODES or status >= 500 or status == 429:
        return RetryableError(message)
    return PicsarisError(message)


class S3ObjectStore(ObjectStore):
    """One bucket through a boto3 S3 client (typed Any: botocore clients are generated at runtime)."""

    def __init__(self, bucket: str, client: Any) -> None:
        if not bucket:
            raise ConfigurationError("S3ObjectStore needs a bucket name")
        self.bucket = bucket
        self.client = client

    @classmethod
    def from_settings(
        cls,
        bucket: str,
        endpoint_url: str | None = None,
        region_name: str = "auto",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> S3ObjectStore:
        """Build a store for R2 (region "auto" + endpoint_url) or any S3-compatible endpoint.

        Credentials left as None come from boto3's usual chain (environment, profile, role).
        """
        if region_name == "auto" and not endpoint_url:
            raise ConfigurationError('region_name "auto" is for R2 and needs an endpoint_url')
        config = Config(
            signature_version="s3v4",
            # Adaptive mode also rate-limits the client itself after SlowDown/429 answers.
            retries={"mode": "adaptive", "max_attempts": 5},
            s3={"addressing_style": "path"},  # R2 and moto both serve path-style URLs
            connect_timeout=10,
            read_timeout=60,
        )
        # Not dagster_aws.s3.S3Resource(...).get_client(): it builds its own botocore Config (only
        # standard-mode retries) and accepts none from us, so it cannot give s3v4 signing,
        # adaptive retries or path-style addressing. A fresh Session per store also keeps us off
        # boto3's shared default session, which is not thread-safe.
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region_name,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )
        return cls(bucket, client)

    @contextlib.contextmanager
    def _translated(self, target: str) -> Iterator[None]:
        try:
            yield
        except ClientError as error:
            raise _client_error(error, target) from error
        except (SSLError, NoCredentialsError, PartialCredentialsError) as error:
            # SSLError is a botocore ConnectionError, but a bad certificate will not fix itself.
            raise ConfigurationError(f"{target}: {error}") from error
        except (BotoConnectionError, HTTPClientError) as error:
            # Connection refused/closed, connect and read timeouts: the network, not the request.
            raise RetryableError(f"{target}: {error}") from error
        except BotoCoreError as error:
            raise PicsarisError(f"{target}: {type(error).__name__}: {error}") from error

    def _target(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        validate_key(key)
        with self._translated(self._target(key)):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        validate_key(key)
        # The body streams after get_object returns, so its read can fail too: translate both.
        with self._translated(self._target(key)):
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            with contextlib.closing(response["Body"]) as body:
                data: bytes = body.read()
        return data

    def head(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        try:
            with self._translated(self._target(key)):
                response = self.client.head_object(Bucket=self.bucket, Key=key)
        except NotFoundError:
            # A HEAD 404 has no body, so a missing bucket also reads as "no such object" here;
            # put/get/list report the missing bucket as a ConfigurationError.
            return None
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            last_modified=response["LastModified"].astimezone(UTC),
            etag=_etag(response.get("ETag")),
        )

    def delete(self, key: str) -> None:
        validate_key(key)
        # S3 answers 204 whether or not the key existed, which makes this idempotent.
        with self._translated(self._target(key)):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> int:
        check_delete_prefix(prefix)
        deleted = 0
        batch: list[str] = []
        # Deleting behind the listing cursor is safe: continuation tokens are key positions.
        for info in self.list(prefix, page_size=MAX_PAGE_SIZE):
            batch.append(info.key)
            if len(batch) == MAX_PAGE_SIZE:  # DeleteObjects takes at most 1000 keys
                deleted += self._delete_batch(batch)
                batch = []
        if batch:
            deleted += self._delete_batch(batch)
        return deleted

    def _delete_batch(self, keys: Sequence[str]) -> int:
        target = self._target(f"{keys[0]} .. {keys[-1]}")
        with self._translated(target):
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
            )
        # Quiet mode lists only failures; a 200 can still carry per-key errors.
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            fake = ClientError({"Error": first}, "DeleteObjects")
            raise _client_error(fake, f"{target} ({len(errors)} of {len(keys)} keys)")
        return len(keys)

    def list(self, prefix: str = "", start_after: str = "", page_size: int = 1000) -> Iterator[ObjectInfo]:
        check_page_size(page_size)  # checked now, not on the first next()
        return self._list(prefix, start_after, page_size)

    def _list(self, prefix: str, start_after: str, page_size: int) -> Iterator[ObjectInfo]:
        params = {"Bucket": self.bucket}
        if prefix:
            params["Prefix"] = prefix
        if start_after:
            params["StartAfter"] = start_after
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(**params, PaginationConfig={"PageSize": page_size})
        with self._translated(self._target(f"{prefix}*")):
            for page in pages:  # one request per page, fetched as the caller iterates
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        key=item["Key"],
                        size=int(item["Size"]),
                        last_modified=item["LastModified"].astimezone(UTC),
                        etag=_etag(item.get("ETag")),
                    )

    def presign_put(self, key: str, content_type: str, expires_in: int = 900) -> UploadTicket:
        validate_key(key)
        # Taken before signing, so the ticket never claims to live longer than the URL does.
        expires_at = ticket_expiry(expires_in)
        with self._translated(self._target(key)):
            url = self.client.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
                ExpiresIn=expires_in,
            )
        return UploadTicket(
            key=key,
            url=url,
            method="PUT",
            headers={"Content-Type": content_type},
            expires_at=expires_at,
        )

    def link(self, key: str, expires_in: int = MAX_PRESIGN_SECONDS) -> str:
        validate_key(key)
        with self._translated(self._target(key)):
            return str(
                self.client.generate_presigned_url(
                    "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
                )
            )

    def describe(self) -> str:
        # scheme://host:port only: an endpoint URL could carry user info or a query string.
        parts = urllib.parse.urlsplit(self.client.meta.endpoint_url)
        host_port = parts.netloc.rpartition("@")[2]
        return f"s3://{self.bucket} @ {parts.scheme}://{host_port}"


def _etag(raw: str | None) -> str | None:
    return raw.strip('"') if raw else None
