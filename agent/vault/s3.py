"""A vault whose bytes live in an S3-compatible object store (AWS S3, Ceph RGW, Backblaze B2,
Wasabi...), through boto3. The endpoint, region and credentials come from the environment
as boto3 reads them (``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, or a profile).

Objects: ``<prefix>appliances/<app>/blobs/ab/<64 hex>`` is a blob's sealed bytes, with the
SHA-256 recorded at upload as metadata ``sha256`` and sent as the upload's
``ChecksumSHA256`` (the store checks it too); records are objects under ``<prefix><key>``.

Object Lock: when the bucket has it, every blob is stored with a COMPLIANCE retention of
``lock_days`` (default the vault's trash days): nobody (a compromised appliance holding
the credentials included) can delete or replace that version before it expires. Deleting
without a version id only adds a delete marker and writing the key again adds a version;
the locked version stays, and the vault's retention deletes blobs for good only once their
lock has expired (a refused delete is retried by a later run).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agent.errors import StoreError
from agent.vault.backend import Backend

HEAD_WORKERS = 16  # parallel HEAD requests when asking which blobs are there


class S3Backend(Backend):
    """A vault in ``s3://bucket/prefix``."""

    def __init__(self, url: str, lock_days: int = 0, lock_dir: Path | None = None):
        import boto3

        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.description = url
        self.object_lock_days = lock_days
        self.lock_dir = lock_dir
        self.s3 = boto3.client("s3")

    def _errors(self):
        from botocore.exceptions import BotoCoreError, ClientError

        return ClientError, BotoCoreError

    def check_bucket(self) -> None:
        """The bucket answers; without Object Lock on it, blobs are not locked."""
        client_error, core_error = self._errors()
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except (client_error, core_error) as exc:
            raise StoreError(f"S3 bucket {self.bucket} is not reachable: {exc}") from None
        try:
            config = self.s3.get_object_lock_configuration(Bucket=self.bucket)
            enabled = config["ObjectLockConfiguration"].get("ObjectLockEnabled") == "Enabled"
        except client_error:
            enabled = False
        if not enabled:
            self.object_lock_days = 0

    # -- blobs ---------------------------------------------------------------------------
    def _blob_key(self, app: str, blob_id: bytes) -> str:
        name = blob_id.hex()
        return f"{self.prefix}appliances/{app}/blobs/{name[:2]}/{name}"

    def blob_size(self, app: str, blob_id: bytes) -> int | None:
        client_error, _ = self._errors()
        try:
            return self.s3.head_object(Bucket=self.bucket, Key=self._blob_key(app, blob_id))[
                "ContentLength"
            ]
        except client_error as exc:
            if _status(exc) == 404:
                return None
            raise

    def blob_sizes(self, app: str, ids: list[bytes]) -> dict[bytes, int | None]:
        with ThreadPoolExecutor(HEAD_WORKERS, thread_name_prefix="bdr-s3-head") as pool:
            return dict(zip(ids, pool.map(lambda i: self.blob_size(app, i), ids), strict=True))

    def put_blob(self, app: str, blob_id: bytes, data, digest: bytes) -> None:
        extra = {}
        if self.object_lock_days:
            until = dt.datetime.now(dt.UTC) + dt.timedelta(days=self.object_lock_days)
            extra = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until}
        self.s3.put_object(
            Bucket=self.bucket,
            Key=self._blob_key(app, blob_id),
            Body=bytes(data),
            Metadata={"sha256": digest.hex()},
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=base64.b64encode(digest).decode(),
            **extra,
        )

    def get_blob(self, app: str, blob_id: bytes) -> tuple[bytes, bytes | None]:
        client_error, _ = self._errors()
        try:
            got = self.s3.get_object(Bucket=self.bucket, Key=self._blob_key(app, blob_id))
        except client_error as exc:
            if _status(exc) == 404:
                raise FileNotFoundError(self._blob_key(app, blob_id)) from None
            raise
        recorded = got.get("Metadata", {}).get("sha256", "")
        try:
            digest = bytes.fromhex(recorded) if len(recorded) == 64 else None
        except ValueError:
            digest = None
        return got["Body"].read(), digest

    def iter_blobs(self, app: str) -> Iterator[tuple[bytes, int]]:
        for obj in self._objects(f"{self.prefix}appliances/{app}/blobs/"):
            name = obj["Key"].rsplit("/", 1)[1]
            if len(name) == 64:
                yield bytes.fromhex(name), obj["Size"]

    def remove_blob(self, app: str, blob_id: bytes, quarantine: bool = False) -> bool:
        """Quarantine: copy aside and hide (a delete marker). Else delete every version;
        False while Object Lock still refuses some (retention retries later)."""
        key = self._blob_key(app, blob_id)
        client_error, _ = self._errors()
        if quarantine:
            aside = f"{self.prefix}appliances/{app}/quarantine/{blob_id.hex()}"
            with contextlib.suppress(client_error):
                self.s3.copy_object(
                    Bucket=self.bucket, Key=aside, CopySource={"Bucket": self.bucket, "Key": key}
                )
            self.s3.delete_object(Bucket=self.bucket, Key=key)
            return True
        removed = True
        for version in self._versions(key):
            try:
                self.s3.delete_object(Bucket=self.bucket, Key=key, VersionId=version)
            except client_error:
                removed = False  # locked: a later purge deletes it
        return removed

    def _versions(self, key: str) -> list[str | None]:
        client_error, _ = self._errors()
        try:
            pages = self.s3.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=key
            )
            found = []
            for page in pages:
                for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    if entry["Key"] == key:
                        found.append(entry["VersionId"])
            return found or [None]
        except client_error:
            return [None]  # an unversioned store

    # -- records -------------------------------------------------------------------------
    def namespaces(self) -> list[str]:
        top = f"{self.prefix}appliances/"
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=top, Delimiter="/"
        )
        return sorted(
            p["Prefix"][len(top) :].strip("/")
            for page in pages
            for p in page.get("CommonPrefixes", [])
        )

    def read_record(self, key: str) -> bytes | None:
        client_error, _ = self._errors()
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        except client_error as exc:
            if _status(exc) == 404:
                return None
            raise

    def write_record(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def delete_record(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def list_records(self, prefix: str) -> list[str]:
        top = f"{self.prefix}{prefix.rstrip('/')}/"
        return sorted(o["Key"][len(self.prefix) :] for o in self._objects(top))

    def _objects(self, prefix: str) -> Iterator[dict]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            yield from page.get("Contents", [])

    @contextlib.contextmanager
    def lock(self, app: str, exclusive: bool):
        """Commits against purges, through a lock file in the vault's local directory;
        an ``s3://`` target without one (an appliance writing straight to the bucket)
        should not run retention on the same bucket at the same time."""
        if self.lock_dir is None:
            yield
            return
        os.makedirs(self.lock_dir / "locks", exist_ok=True)
        with open(self.lock_dir / "locks" / f"s3-{app}.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield


def _status(exc) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
