"""A PostgreSQL cluster of our own on 127.0.0.1: for ``shulian up`` (the consumer's database in
the walkthrough) and for the tests (one way to start PostgreSQL everywhere).

Binaries: the machine's ``initdb``/``pg_ctl``/``postgres`` (PATH, then
/usr/lib/postgresql/*/bin), else those bundled in the ``pgserver`` wheel. PostgreSQL refuses to
run as root: as root the cluster belongs to the ``postgres`` user (else ``nobody``).

Two ways to run a cluster:

- supervised, in the foreground (``shulian up``): :meth:`PgCluster.serve_argv` is a child for
  :class:`~shulian.embedded.supervisor.Supervisor`; when it has to drop root it goes through
  ``python -m shulian.embedded.postgres`` which switches user and *execs* ``postgres``, so the
  supervised pid is the postmaster itself (SIGTERM: a clean shutdown);
- daemonised with ``pg_ctl`` (tests that stop and restart a server): :meth:`PgCluster.start`,
  :meth:`PgCluster.stop`.

Authentication is ``trust`` for user ``postgres`` on 127.0.0.1 and the cluster's own socket
directory: a development database for one machine. Anything else: point ``shulian up`` at an
existing server with ``--postgres-dsn``.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from shulian.embedded.net import wait_until
from shulian.errors import EmbeddedProcessError

__all__ = ["PgCluster", "find_pg_bin", "run_as_user"]

_EXES = ("initdb", "pg_ctl", "postgres")


def _package_dirs(name: str) -> list[str]:
    """Where an installed package lives, found without importing it: importing ``pgserver``
    asks platformdirs for a runtime directory at import time, which warns that XDG_RUNTIME_DIR
    is unset (and makes /tmp/runtime-<uid>) in every process that merely looks for it."""
    spec = importlib.util.find_spec(name)
    return list(spec.submodule_search_locations or []) if spec is not None else []


def find_pg_bin() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    candidates += [Path(d) / "pginstall" / "bin" for d in _package_dirs("pgserver")]
    for d in candidates:
        if all((d / exe).exists() for exe in _EXES):
            return d
    raise EmbeddedProcessError(
        "no PostgreSQL binaries (initdb, pg_ctl, postgres) on PATH, in /usr/lib/postgresql/*/bin "
        "or in the pgserver wheel (pip install pgserver), or give an existing server with "
        "--postgres-dsn")


def run_as_user() -> str | None:
    """The unprivileged user to run PostgreSQL as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
            return user
        except KeyError:
            continue
    raise EmbeddedProcessError("running as root and neither user 'postgres' nor 'nobody' "
                               "exists to run PostgreSQL as")


@dataclass
class PgCluster:
    """A cluster in ``data/db``; socket and server log in ``data``; port on 127.0.0.1."""

    data: Path
    port: int
    bin_dir: Path
    user: str | None = None

    @classmethod
    def prepare(cls, data: Path, *, port: int) -> PgCluster:
        """Binaries found, ``data`` created and owned by the server's user, cluster initialised
        unless it already is (a kept data directory is reused)."""
        cluster = cls(data, port, find_pg_bin(), run_as_user())
        data.mkdir(parents=True, exist_ok=True)
        os.chmod(data, 0o755)
        if cluster.user is not None:
            shutil.chown(data, cluster.user, cluster.user)
            # the server's user must reach ``data``: let it traverse (not list) our folder
            parent = data.resolve().parent
            mode = parent.stat().st_mode
            if parent.stat().st_uid == os.geteuid() and not mode & stat.S_IXOTH:
                os.chmod(parent, stat.S_IMODE(mode) | stat.S_IXOTH)
        if not cluster.initialised:
            cluster.init()
        return cluster

    @property
    def db_dir(self) -> Path:
        return self.data / "db"

    @property
    def log(self) -> Path:
        return self.data / "server.log"

    @property
    def initialised(self) -> bool:
        return (self.db_dir / "PG_VERSION").exists()

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout_s: float = 60.0) -> None:
        argv = [str(self.bin_dir / args[0]), *args[1:]]
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=timeout_s, text=True,
                                  user=self.user, group=self.user, cwd=self.data)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EmbeddedProcessError(f"{args[0]} failed: {exc}") from exc
        if proc.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise EmbeddedProcessError(f"{args[0]} failed ({proc.returncode}):\n"
                                       f"{proc.stdout}\n{proc.stderr}\n{tail}")

    def init(self) -> PgCluster:
        self._run("initdb", "-D", str(self.db_dir), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync")
        return self

    def _server_options(self) -> list[str]:
        return ["-p", str(self.port), "-k", str(self.data), "-c", "listen_addresses=127.0.0.1",
                "-c", "max_connections=50"]

    def serve_argv(self) -> list[str]:
        """``postgres`` in the foreground (logs to stderr), dropping root first if needed."""
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.db_dir), *self._server_options()]
        if self.user is None:
            return argv
        return [sys.executable, "-m", "shulian.embedded.postgres", "--user", self.user, *argv]

    def start(self, *, ready_timeout_s: float = 60.0, fsync: bool = False) -> None:
        """Start daemonised with ``pg_ctl`` and wait until it accepts connections."""
        opts = " ".join([*self._server_options(), *([] if fsync else ["-c", "fsync=off"])])
        self._run("pg_ctl", "-D", str(self.db_dir), "-l", str(self.log), "-w",
                  "-t", str(int(ready_timeout_s)), "-o", opts, "start",
                  timeout_s=ready_timeout_s + 10)
        if not wait_until(self.answers, timeout_s=ready_timeout_s, interval_s=0.1):
            raise EmbeddedProcessError(f"PostgreSQL did not accept connections on {self.port}")

    def stop(self) -> None:
        """Stop a ``pg_ctl``-started server (fast: open sessions are ended)."""
        self._run("pg_ctl", "-D", str(self.db_dir), "-m", "fast", "-w", "stop")

    def answers(self) -> bool:
        return answers(self.dsn)


def answers(dsn: str, *, timeout_s: int = 2) -> bool:
    """True when ``dsn`` accepts a connection and a query."""
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=timeout_s) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _exec_as(user: str, argv: list[str]) -> None:  # pragma: no cover - replaces the process
    """Become ``user`` (groups, gid, uid), keep dying with our parent, exec ``argv``."""
    entry = pwd.getpwnam(user)
    os.initgroups(user, entry.pw_gid)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.environ["HOME"] = entry.pw_dir
    if sys.platform.startswith("linux"):
        # a change of uid clears the parent-death signal the supervisor asked for: set it again
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.execv(argv[0], argv)


def main(args: list[str]) -> None:  # pragma: no cover - exercised through `shulian up`
    if len(args) < 3 or args[0] != "--user":
        raise SystemExit("usage: python -m shulian.embedded.postgres --user USER POSTGRES ARGS...")
    _exec_as(args[1], args[2:])


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
