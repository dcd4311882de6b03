"""Shared versions' bytes in an S3-compatible bucket (ORVA_BLOB_URL; docs/CLUSTER.md "Shared versions").

One job: put, get, test and delete a packed version under ``<prefix>/<sha256>`` in the bucket the URL names
(orvad/config.py ``parse_blob_url``). ``SharedVersions`` (orvad/builder/shared.py) decides what to store and
checks every byte it reads against the hash; this module only moves bytes. boto3 is synchronous: every call
runs in a thread (``asyncio.to_thread``), never on the event loop, and boto3 is imported only when
ORVA_BLOB_URL is set (the ``s3`` extra: ``pip install 'orva[s3]'``).

Credentials come from AWS's own chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, an instance
role), never from the URL; no message made here holds the secret key: an error says the bucket, the
operation and the service's error code and message.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from orvad.config import BlobUrl, parse_blob_url

T = TypeVar("T")

_CONNECT_TIMEOUT_S = 5
_READ_TIMEOUT_S = 60  # a wait for the next bytes of one answer (not the whole transfer)
_ATTEMPTS = 3
# deletes run while the sweep holds the cluster's write lock (orvad/store/version_blobs.py): shorter waits
_QUICK_READ_TIMEOUT_S = 10
_QUICK_ATTEMPTS = 2
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
_REFUSED = {
    "403",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AllAccessDisabled",
}


class BucketError(Exception):
    """A bucket operation failed; the message names the bucket, what was tried and the cause."""


class BucketUnusable(BucketError):
    """The bucket cannot be used at all (missing, credentials refused, unreachable, boto3 not installed):
    orvad refuses to start (exit 2)."""


class BlobBucket(Protocol):
    """What SharedVersions needs of a bucket (tests may give it another)."""

    async def check(self) -> None:
        """Raise BucketUnusable unless the bucket exists and the credentials are accepted."""

    async def put(self, blob_hash: str, data: bytes) -> None: ...

    async def get(self, blob_hash: str, max_bytes: int) -> bytes | None:
        """The object's bytes; None when there is no such object; BucketError past ``max_bytes``."""

    async def exists(self, blob_hash: str) -> bool: ...

    async def delete(self, blob_hashes: Sequence[str]) -> None:
        """Delete the objects (a missing one is not an error)."""


class S3Bucket:
    """A bucket reached through boto3; one client per kind of call, made on first use, shared by threads."""

    def __init__(self, url: BlobUrl) -> None:
        try:
            self._boto3: Any = importlib.import_module("boto3")
            self._config: Any = importlib.import_module("botocore.config").Config
            errors: Any = importlib.import_module("botocore.exceptions")
        except ImportError:
            raise BucketUnusable(
                "ORVA_BLOB_URL needs boto3, the `s3` extra: pip install 'orva[s3]'"
            ) from None
        self._client_error: type[Exception] = errors.ClientError
        self._botocore_error: type[Exception] = errors.BotoCoreError
        self.url = url
        self._clients: dict[bool, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, text: str) -> S3Bucket:
        """The bucket ORVA_BLOB_URL names (validated at load already: orvad/config.py)."""
        return cls(parse_blob_url(text))

    def __str__(self) -> str:
        return str(self.url)

    def _client(self, quick: bool = False) -> Any:
        with self._lock:
            client = self._clients.get(quick)
            if client is None:
                options: dict[str, Any] = {
                    "connect_timeout": _CONNECT_TIMEOUT_S,
                    "read_timeout": _QUICK_READ_TIMEOUT_S if quick else _READ_TIMEOUT_S,
                    "retries": {"max_attempts": _QUICK_ATTEMPTS if quick else _ATTEMPTS, "mode": "standard"},
                }
                if self.url.endpoint:  # MinIO and the like: the bucket in the path, not the host name
                    options["s3"] = {"addressing_style": "path"}
                for name in ("request_checksum_calculation", "response_checksum_validation"):
                    if name in getattr(self._config, "OPTION_DEFAULTS", {}):  # botocore >= 1.36
                        options[name] = "when_required"  # S3-compatible stores without the newer checksums
                session = self._boto3.session.Session()
                client = session.client(
                    "s3",
                    endpoint_url=self.url.endpoint,
                    region_name=self.url.region,
                    config=self._config(**options),
                )
                self._clients[quick] = client
            return client

    async def _call(self, what: str, call: Callable[[], T]) -> T:
        """``call`` in a thread; boto3's and the service's errors as BucketError (code and message only)."""
        try:
            return await asyncio.to_thread(call)
        except self._client_error as exc:
            raise BucketError(f"{what} in {self.url} failed: {_describe(exc)}") from None
        except self._botocore_error as exc:
            raise BucketError(f"{what} in {self.url} failed: {exc}") from None

    async def check(self) -> None:
        def head() -> None:
            self._client(quick=True).head_bucket(Bucket=self.url.bucket)

        try:
            await asyncio.to_thread(head)
        except self._client_error as exc:
            code = _code(exc)
            if code in _NOT_FOUND:
                cause = "there is no such bucket (create it first)"
            elif code in _REFUSED:
                cause = (
                    "the credentials were refused (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and "
                    "the bucket's policy)"
                )
            else:
                cause = _describe(exc)
            raise BucketUnusable(f"the bucket {self.url} (ORVA_BLOB_URL) cannot be used: {cause}") from None
        except self._botocore_error as exc:
            hint = (
                " (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in orvad's environment, or another AWS "
                "credential source)"
                if "Credential" in type(exc).__name__
                else ""
            )
            raise BucketUnusable(
                f"the bucket {self.url} (ORVA_BLOB_URL) cannot be used: {exc}{hint}"
            ) from None

    async def put(self, blob_hash: str, data: bytes) -> None:
        key = self.url.key(blob_hash)
        await self._call(
            f"storing {key}",
            lambda: self._client().put_object(
                Bucket=self.url.bucket, Key=key, Body=data, ContentType="application/gzip"
            ),
        )

    async def get(self, blob_hash: str, max_bytes: int) -> bytes | None:
        key = self.url.key(blob_hash)

        def read() -> bytes | None:
            try:
                answer = self._client().get_object(Bucket=self.url.bucket, Key=key)
            except self._client_error as exc:
                if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                    return None
                raise
            body = answer["Body"]
            try:
                if int(answer.get("ContentLength") or 0) > max_bytes:
                    raise BucketError(f"the object {key} in {self.url} is larger than {max_bytes} bytes")
                data = body.read(max_bytes + 1)
            finally:
                body.close()
            if len(data) > max_bytes:
                raise BucketError(f"the object {key} in {self.url} is larger than {max_bytes} bytes")
            return bytes(data)

        return await self._call(f"reading {key}", read)

    async def exists(self, blob_hash: str) -> bool:
        key = self.url.key(blob_hash)

        def head() -> bool:
            try:
                self._client(quick=True).head_object(Bucket=self.url.bucket, Key=key)
            except self._client_error as exc:
                if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                    return False
                raise
            return True

        return await self._call(f"looking for {key}", head)

    async def delete(self, blob_hashes: Sequence[str]) -> None:
        keys = [self.url.key(h) for h in blob_hashes]

        def remove() -> None:
            client = self._client(quick=True)
            for (
                key
            ) in keys:  # one DeleteObject each: every S3-compatible store has it (not all DeleteObjects)
                client.delete_object(Bucket=self.url.bucket, Key=key)

        await self._call(f"deleting {len(keys)} object(s)", remove)


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _describe(exc: Exception) -> str:
    """A service error as its code and message (HTTP status alone for a HEAD, which has no body)."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    said = ": ".join(part for part in (code, message) if part) or "no answer"
    return f"{said} (HTTP {status})" if status and str(status) != code else said
