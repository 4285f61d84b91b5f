"""The team's services as the tests start them: PostgreSQL, an S3-compatible server, `mlflow server`.

Each runs as its own process on 127.0.0.1 on a free port and is stopped by its process id. PostgreSQL is Debian's
(`postgresql`, scripts/install-test-tools.sh), run from a fresh `initdb` folder; it refuses to run as root, so as root
it runs as the `postgres` user that package creates. S3 is moto's server mode (`moto_server`, which Ray's own tests
use for S3), reached exactly as a user reaches MinIO or AWS: AWS_ENDPOINT_URL_S3 and the AWS_* credentials.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import wait_for_http

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nobody listens on now, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until something accepts connections on 127.0.0.1:`port`; RuntimeError where `process` died first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def stop(process: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    """Stop a service started in a session of its own, by its process id (its process group), SIGKILL after 20 s."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, sig)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (Debian keeps them out of PATH), None where it is not installed."""
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)),
                                           None)
    return Path(found).resolve().parent if found else None


class Postgres:
    """A PostgreSQL server of its own: `initdb` into a new folder, `postgres` on 127.0.0.1:<port>, a user with a
    password and the databases asked for; stopped by its process id."""

    def __init__(self, user: str = "team", password: str | None = None) -> None:
        self.bin = postgres_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed: run scripts/install-test-tools.sh (Debian's postgresql)")
        self.user, self.password = user, password or secrets.token_hex(8)
        self.port, self.process = free_port(), None
        self.folder = Path(tempfile.mkdtemp(prefix="izf-postgres-"))  # not under pytest's root-only tmp folders
        self._as = {}
        if os.geteuid() == 0:  # postgres refuses root
            account = pwd.getpwnam("postgres")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self._as = {"user": account.pw_uid, "group": account.pw_gid}

    def url(self, database: str, password: str | None = None) -> str:
        """postgresql://user:password@127.0.0.1:port/database (this user's password unless one is given)."""
        return f"postgresql://{self.user}:{password or self.password}@127.0.0.1:{self.port}/{database}"

    def start(self, *databases: str) -> None:
        data = self.folder / "data"
        if not data.is_dir():
            secret = self.folder / "pw"
            secret.write_text(self.password + "\n")
            if self._as:
                os.chown(secret, self._as["user"], self._as["group"])
            subprocess.run([str(self.bin / "initdb"), "-D", str(data), "-U", self.user, "--pwfile", str(secret),
                            "--auth", "scram-sha-256", "-E", "UTF8", "--no-sync"], check=True,
                           capture_output=True, **self._as)
        self.process = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
             "-c", f"unix_socket_directories={self.folder}", "-c", "fsync=off"],
            stdout=subprocess.DEVNULL, stderr=open(self.folder / "log", "ab"), start_new_session=True,  # noqa: SIM115
            **self._as)
        wait_for_port(self.port, self.process)
        for database in databases:
            self.create_database(database)

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{name}"')

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop(self.process, sig)
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class S3Server:
    """moto's S3 server on 127.0.0.1:<port>; `env` is what a user sets to reach it (as for MinIO)."""

    def __init__(self) -> None:
        self.port, self.process = free_port(), None
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {"AWS_ENDPOINT_URL_S3": self.endpoint, "AWS_ACCESS_KEY_ID": "team-key",
                    "AWS_SECRET_ACCESS_KEY": "team-secret", "AWS_REGION": "us-east-1",
                    "AWS_EC2_METADATA_DISABLED": "true"}

    def start(self) -> None:
        self.process = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for_port(self.port, self.process)

    def create_bucket(self, name: str) -> None:
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                     aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
                     region_name=self.env["AWS_REGION"]).create_bucket(Bucket=name)

    def stop(self) -> None:
        stop(self.process)
        self.process = None


class MlflowServer:
    """`mlflow server` on 127.0.0.1 over a backend store (default: a sqlite file in `root`) with proxied artifacts in
    `root/art`, stopped and restarted by its process id."""

    def __init__(self, root: Path, backend_store_uri: str | None = None) -> None:
        self.root, self.port, self.process = root, free_port(), None
        self.backend = backend_store_uri or f"sqlite:///{root / 'mlflow.db'}"
        self.uri = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from record.study import database_url

        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.process = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--workers", "1", "--host", "127.0.0.1", "--port", str(self.port),
             "--backend-store-uri", database_url(self.backend), "--artifacts-destination", str(self.root / "art")],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=open(self.root / "server.log", "ab"))  # noqa: SIM115
        try:
            wait_for_http(f"{self.uri}/health", self.process, timeout=90)
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        stop(self.process)
        self.process = None


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--window-size=1600,1000")


def chromium():  # noqa: ANN201 - a selenium webdriver
    """Debian's chromium, headless, driven by selenium (quit it when done)."""
    import pytest
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        pytest.fail("the MLflow UI test needs Debian's chromium and chromium-driver: run scripts/install-test-tools.sh "
                    "(the README's test command does)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(driver))
    browser.implicitly_wait(30)
    return browser
