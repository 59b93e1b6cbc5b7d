"""A real PostgreSQL server for the tests: initdb + pg_ctl into a temp dir, a unix socket, stopped at the end.

As root the server runs as the ``postgres`` user (``runuser``), in a temp dir that user owns; otherwise as
the current user. It skips, saying why, only where PostgreSQL's ``initdb`` cannot be found.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_DATABASES = itertools.count()


def find_postgres_program(name: str) -> str | None:
    """``name`` on PATH, else in the newest /usr/lib/postgresql/*/bin (Debian keeps it off PATH)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return candidates[-1] if candidates else None


class PostgresServer:
    def __init__(self, base: Path, run_as: list[str]) -> None:
        self.base = base
        self.data = base / "data"
        self.run_as = run_as
        self.url = f"postgresql://amk@/postgres?host={base}"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.run_as, *args], capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        initdb, pg_ctl = find_postgres_program("initdb"), find_postgres_program("pg_ctl")
        done = self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "amk", "--no-sync", "-E", "UTF8")
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr or done.stdout}")
        options = f"-k {self.base} -c listen_addresses='' -c fsync=off -c max_connections=60"
        done = self._run(pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.base / "server.log"), "-w", "start")
        if done.returncode:
            log = (self.base / "server.log").read_text() if (self.base / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stderr or done.stdout}\n{log}")

    def stop(self) -> None:
        self._run(find_postgres_program("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def new_database(self) -> str:
        """A fresh, empty database's URL."""
        import psycopg

        name = f"amk_test_{os.getpid()}_{next(_DATABASES)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://amk@/{name}?host={self.base}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if find_postgres_program("initdb") is None or find_postgres_program("pg_ctl") is None:
        pytest.skip("needs PostgreSQL's initdb and pg_ctl (install the postgresql package); neither is on PATH "
                    "nor in /usr/lib/postgresql/*/bin")
    pytest.importorskip("psycopg", reason="needs psycopg: pip install 'amk[postgres]'")
    base = Path(tempfile.mkdtemp(prefix="amk-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            shutil.rmtree(base, ignore_errors=True)
            pytest.skip("running as root, PostgreSQL must run as another user, and runuser is not installed")
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            pytest.skip("running as root, PostgreSQL must run as the 'postgres' user, which does not exist "
                        "(create it: useradd --system postgres)")
        shutil.chown(base, "postgres", "postgres")
        run_as = [runuser, "-u", "postgres", "--"]
    server = PostgresServer(base, run_as)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh database on the session's PostgreSQL server."""
    return postgres_server.new_database()
