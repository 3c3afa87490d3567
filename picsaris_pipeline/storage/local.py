"""An ObjectStore in a local directory: the embedded default and the fake beside S3 in tests."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from picsaris_pipeline.errors import BadInputError, ConfigurationError, NotFoundError
from picsaris_pipeline.storage.base import (
    MAX_PRESIGN_SECONDS,
    TEMP_PREFIX,
    ObjectInfo,
    ObjectStore,
    UploadTicket,
    atomic_write,
    check_delete_prefix,
    check_page_size,
    ticket_expiry,
    validate_key,
)

# Errors that mean "there is no object under this key" (a parent being a file counts).
_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


class LocalObjectStore(ObjectStore):
    """Keys are file paths under `root`. Writes are atomic; content types are not kept.

    Unlike S3, a key cannot be both an object and a "folder" of other keys ("a" and "a/b"), and
    deleting leaves empty directories behind: pruning them would race with a concurrent put.
    """

    def __init__(self, root: Path | str) -> None:
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        # Resolved once, so the escape check in _path compares real paths.
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        validate_key(key)
        if key.endswith("/"):
            raise BadInputError(f"the local store cannot hold a key ending in '/': {key!r}")
        if any(segment.startswith(TEMP_PREFIX) for segment in key.split("/")):
            raise BadInputError(f"object key uses the reserved prefix {TEMP_PREFIX!r}: {key!r}")
        # resolve() follows symlinks, so a symlink inside root cannot smuggle a key outside it.
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise BadInputError(f"object key {key!r} resolves outside the store root")
        return path

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        try:
            atomic_write(path, data)
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as error:
            raise BadInputError(f"key {key!r} clashes with an existing key (a file cannot also be a folder)") from error
        except PermissionError as error:
            raise ConfigurationError(f"cannot write under {self.root}: {error}") from error

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except _MISSING:
            raise NotFoundError(f"no object {key!r} in {self.describe()}") from None

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except _MISSING:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None  # a directory is a "folder" of keys, not an object
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def delete(self, key: str) -> None:
        path = self._path(key)
        # A folder or a path through a file holds no object: deleting it is a no-op, like S3.
        with contextlib.suppress(NotADirectoryError, IsADirectoryError):
            path.unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        check_delete_prefix(prefix)
        deleted = 0
        # Safe while walking: each directory's entries are read before anything in it is yielded.
        for info in self.list(prefix):
            try:
                self._path(info.key).unlink()
                deleted += 1
            except FileNotFoundError:
                pass  # deleted concurrently; not ours to count
        return deleted

    def list(self, prefix: str = "", start_after: str = "", page_size: int = 1000) -> Iterator[ObjectInfo]:
        # page_size means nothing for a directory walk; it is checked so misuse fails on both stores.
        check_page_size(page_size)
        return self._walk(self.root, "", prefix, start_after)

    def _walk(self, directory: Path, base: str, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(directory) as scan:
                entries = [entry for entry in scan if not entry.name.startswith(TEMP_PREFIX)]
        except _MISSING:
            return  # removed while we walked
        # Sort a directory as "name/" so its keys land where S3 would put them: "a-c" < "a/b".
        named: list[tuple[str, os.DirEntry[str]]] = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                named.append((f"{base}{entry.name}/", entry))
            elif entry.is_file(follow_symlinks=False):  # symlinks are skipped: they may leave root
                named.append((f"{base}{entry.name}", entry))
        named.sort(key=lambda pair: pair[0])

        for key, entry in named:
            if key.endswith("/"):
                # Skip subtrees that hold no key with this prefix, or only keys <= start_after.
                if not (key.startswith(prefix) or prefix.startswith(key)):
                    continue
                if start_after > key and not start_after.startswith(key):
                    continue
                yield from self._walk(Path(entry.path), key, prefix, start_after)
            elif key.startswith(prefix) and key > start_after:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted between scandir and stat
                yield ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def presign_put(self, key: str, content_type: str, expires_in: int = 900) -> UploadTicket:
        return UploadTicket(
            key=key,
            url=self._path(key).as_uri(),
            method="PUT",
            headers={"Content-Type": content_type},
            expires_at=ticket_expiry(expires_in),
        )

    links_open_from_web_pages = False  # file:// links

    def link(self, key: str, expires_in: int = MAX_PRESIGN_SECONDS) -> str:
        return self._path(key).as_uri()

    def describe(self) -> str:
        return f"local:{self.root}"
