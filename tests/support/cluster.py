"""A private PostgreSQL cluster for tests that must stop the server or need password auth.

It runs with Debian's initdb and pg_ctl on a free port, as the postgres user when the tests run
as root (PostgreSQL refuses to run as root), with scram-sha-256 authentication on TCP. On
request it also speaks TLS (a self-signed certificate made here with openssl, for 127.0.0.1,
::1 and localhost), listens on more addresses, and puts pg_hba rules of the test's own first.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support import postgres
from tests.support.urls import DatabaseURL, parse_database_url

PASSWORD = "s3cret-Pa55-w0rd"  # a value tests search for in every output


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def make_certificate(directory: Path, name: str, common_name: str = "localhost") -> Path:
    """A self-signed certificate (name.crt) and its key (name.key, mode 0600) in `directory`,
    valid for 127.0.0.1, ::1 and localhost: it is its own root, so it is also the CA file."""
    certificate, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={common_name}",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    key.chmod(0o600)
    return certificate


class PrivateCluster:
    def __init__(
        self,
        port: int,
        *,
        tls: bool = False,
        hba_rules: Sequence[str] = (),
        listen: Sequence[str] = ("127.0.0.1",),
    ) -> None:
        bindir = _binaries()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.bindir = bindir
        self.port = port
        self.directory = Path(tempfile.mkdtemp(prefix="pg-cluster-"))
        self.data = self.directory / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        password_file = self.directory / "password"
        password_file.write_text(PASSWORD + "\n")
        if self._as_postgres:
            shutil.chown(password_file, "postgres", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={password_file}",
            "-E",
            "UTF8",
            "--no-instructions",
        )
        self.listen = tuple(listen)
        self.certificate: Path | None = None
        if tls:
            self.certificate = make_certificate(self.directory, "server")
            if self._as_postgres:
                for path in (self.certificate, self.certificate.with_suffix(".key")):
                    shutil.chown(path, "postgres", "postgres")
        if hba_rules:  # first match wins: the test's rules before initdb's defaults
            hba = self.data / "pg_hba.conf"
            hba.write_text("\n".join(hba_rules) + "\n" + hba.read_text())

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bindir / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses={','.join(self.listen)} "
            "-c fsync=off"
        )
        if self.certificate is not None:
            key = self.certificate.with_suffix(".key")
            options += f" -c ssl=on -c ssl_cert_file={self.certificate} -c ssl_key_file={key}"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres", password: str = PASSWORD) -> DatabaseURL:
        return parse_database_url(
            f"postgresql://postgres:{password}@127.0.0.1:{self.port}/{database}"
        )

    def execute(self, *statements: str, database: str = "postgres") -> None:
        """Run statements as the superuser (trust on the cluster's own Unix socket)."""
        postgres.execute(self.socket_url(database), *statements)

    def socket_url(self, database: str = "postgres") -> DatabaseURL:
        return parse_database_url(
            f"postgresql://postgres@/{database}?host={self.directory}&port={self.port}"
        )

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def started_cluster(port: int, **options: object) -> Iterator[PrivateCluster]:
    """A running private cluster, destroyed afterwards; a skip when it cannot be had (a failure
    under CI=true, where every PostgreSQL test must run)."""
    try:
        cluster = PrivateCluster(port, **options)  # type: ignore[arg-type]
    except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
        _unavailable(f"cannot create a private PostgreSQL cluster: {error}")
    try:
        cluster.start()
    except subprocess.CalledProcessError as error:
        log = cluster.directory / "log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else error.stderr
        cluster.destroy()
        _unavailable(f"cannot start a private PostgreSQL cluster: {detail}")
    try:
        yield cluster
    finally:
        cluster.destroy()


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
