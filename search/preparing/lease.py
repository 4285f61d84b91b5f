"""One driver per search name across machines: a lease object beside the searches of a name on S3 storage.

Two drivers on two machines that share `--storage-path s3://...` cannot see each other's `flock`. The lease is the
object `<storage>/<name>/.lease`, taken with S3's conditional writes (`If-None-Match: *` creates it only where there
is none; `If-Match: <ETag>` replaces or deletes only the version one read), which AWS S3 and MinIO both honour and
which make taking it atomic: of two drivers, exactly one write succeeds. Its holder renews it every third of its
time to live; a holder killed by SIGKILL stops renewing, and once the time to live has passed since the last
renewal (measured against the S3 server's own clock, so the machines' clocks do not matter) the next driver takes it
over, again by a conditional write. It lives with the storage it guards: no database or tracking server is needed.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from datetime import datetime
from email.utils import parsedate_to_datetime

from izf.errors import ConfigError
from record.storage import s3_client, split_s3
from search.preparing.lock import NameLock, SearchBusy

__all__ = ["S3Lease", "name_lock", "lease_seconds", "LEASE_FILE"]

LEASE_FILE = ".lease"
DEFAULT_LEASE_SECONDS = 60.0


def lease_seconds() -> float:
    """How long a lease outlives its last renewal: $IZF_LEASE_SECONDS, else 60 s."""
    value = os.environ.get("IZF_LEASE_SECONDS", "")
    try:
        seconds = float(value) if value else DEFAULT_LEASE_SECONDS
    except ValueError:
        raise ConfigError(f"IZF_LEASE_SECONDS={value!r} is not a number of seconds") from None
    if seconds <= 0:
        raise ConfigError(f"IZF_LEASE_SECONDS={value!r} must be more than 0")
    return seconds


def name_lock(name_folder: str) -> NameLock | S3Lease:
    """The one-driver-per-name guard of a name folder: on S3 a lease that drivers on any machine see, else a
    `flock` on this machine (NameLock)."""
    return S3Lease(name_folder) if name_folder.startswith("s3://") else NameLock(name_folder)


class S3Lease:
    """The lease on an S3 name folder (see the module's docstring): acquire, renew in the background, release."""

    def __init__(self, name_folder: str) -> None:
        self.name_folder = name_folder.rstrip("/")
        bucket, prefix, options = split_s3(self.name_folder)
        self.bucket, self.key = bucket, f"{prefix}/{LEASE_FILE}" if prefix else LEASE_FILE
        self.client = s3_client(options)
        self.ttl = lease_seconds()
        self._etag: str | None = None
        self._body = b""
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False

    def acquire(self, search_id: str) -> None:
        """Take the lease for `search_id`, or raise SearchBusy naming the driver that holds it."""
        holder = f"search {search_id} (driver pid {os.getpid()} on {socket.gethostname()})"
        self._body = json.dumps({"holder": holder, "ttl_s": self.ttl}).encode()
        current = None
        for _ in range(3):  # each round lost only to another driver's write in between
            if self._put(IfNoneMatch="*"):
                return self._start_renewing()
            current = self._read()
            if current is None:
                continue  # released meanwhile
            data, etag, age = current
            ttl = float(data.get("ttl_s", self.ttl))
            if age <= ttl:
                break
            if self._put(IfMatch=etag):
                print(f"{self.name_folder}: took over the lease of {data.get('holder', 'a driver')}, not renewed for "
                      f"{age:.0f} s (its time to live: {ttl:g} s)", file=sys.stderr)
                return self._start_renewing()
        data, _, age = current or ({}, "", 0.0)
        ttl = float(data.get("ttl_s", self.ttl))
        raise SearchBusy(f"{self.name_folder} is in use: {data.get('holder', 'another driver')} is running (its lease "
                         f"was renewed {age:.0f} s ago; a driver that died frees it {ttl:g} s after its last "
                         "renewal); wait for it to end, or start this search under another --name")

    def release(self) -> None:
        """Stop renewing and delete the lease (only the version this driver wrote: one taken over stays)."""
        if self._renewer is None:
            return
        self._stop.set()
        self._renewer.join()
        self._renewer = None
        if not self.lost:
            self._call(self.client.delete_object, Bucket=self.bucket, Key=self.key, IfMatch=self._etag)

    def _start_renewing(self) -> None:
        self._stop.clear()
        self.lost = False
        self._renewer = threading.Thread(target=self._renew, name="izf-lease", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if not self._put(IfMatch=self._etag):
                    self.lost = True
                    print(f"warning: {self.name_folder}: this driver's lease was taken over by another driver "
                          "(it was not renewed in time); two drivers may now run this name", file=sys.stderr)
                    return
            except Exception as e:  # noqa: BLE001 - S3 unreachable for a while: try again at the next renewal
                print(f"warning: {self.name_folder}: the lease could not be renewed ({type(e).__name__}: {e}); "
                      "trying again", file=sys.stderr)

    def _put(self, **condition: str) -> bool:
        """Write the lease under `condition`; False where S3 refused it (412: another driver's write came first)."""
        response = self._call(self.client.put_object, Bucket=self.bucket, Key=self.key, Body=self._body,
                              ContentType="application/json", **condition)
        if response is None:
            return False
        self._etag = response["ETag"]
        return True

    def _read(self) -> tuple[dict, str, float] | None:
        """(the lease's content, its ETag, seconds since its last write by the server's clock), None if none."""
        response = self._call(self.client.get_object, Bucket=self.bucket, Key=self.key)
        if response is None:
            return None
        try:
            data = json.loads(response["Body"].read())
        except ValueError:
            data = {}
        now = _server_time(response) or datetime.now(response["LastModified"].tzinfo)
        return data, response["ETag"], max(0.0, (now - response["LastModified"]).total_seconds())

    def _call(self, method, **kwargs: object) -> dict | None:  # noqa: ANN001 - a boto3 client's method
        """`method(**kwargs)`; None where S3 answered that the condition failed or the object is not there."""
        from botocore.exceptions import ClientError

        try:
            return method(**kwargs)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (404, 409, 412) or code in ("NoSuchKey", "PreconditionFailed", "ConditionalRequestConflict"):
                return None
            raise


def _server_time(response: dict) -> datetime | None:
    """The S3 server's clock at its answer (the Date header), so that a lease's age does not depend on ours."""
    header = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(header) if header else None
    except (TypeError, ValueError):
        return None
