"""CPU time and SQL statements of one ``POST /api/v1/responses/`` through the real WSGI handler.

    .venv/bin/python bench/profile_post.py [--requests 500] [--path /api/v1/responses/] [--get]
                                           [--profile cprofile|pyinstrument] [--keep-db]

Production settings (CEM_ENV=production, Redis cache for the rate limit), the same scratch
organization and body as bench/feedback.py part (d), in one process with no HTTP server: what
is left is the cost of the request path itself. Prints CPU ms per request (this process,
and the PostgreSQL backend serving it; Redis's share is not in it), the SQL statements of one
request, and optionally a profile. Runs against its own scratch database, dropped at the end unless --keep-db.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scratch import prepare_environment, recreate_database


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--path", default="/api/v1/responses/")
    p.add_argument("--get", action="store_true", help="GET the path instead of POSTing the body")
    p.add_argument("--no-auth", action="store_true", help="send no Authorization header")
    p.add_argument("--profile", choices=["cprofile", "pyinstrument"])
    p.add_argument("--db-name", default="cem_bench_profile")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument(
        "--log-statements",
        action="store_true",
        help="log_statement=all on the scratch database (see the server log)",
    )
    return p.parse_args()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    args = parse_args()
    _bench_url, admin_url = prepare_environment(args.db_name)
    os.environ.update(
        CEM_ENV="production",
        DEBUG="false",
        SECRET_KEY="bench-only-" + "k" * 50,
        ALLOWED_HOSTS="127.0.0.1",
        CACHE_KEY_PREFIX="cem-bench-profile",
        LOG_LEVEL="WARNING",
    )
    recreate_database(admin_url, args.db_name)
    if args.log_statements:
        import psycopg
        from psycopg import sql

        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET log_statement = 'all'").format(sql.Identifier(args.db_name))
            )
    import django

    django.setup()
    import warnings

    warnings.filterwarnings("ignore", message="No directory at")
    import importlib.util

    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.db import connection, connections

    # bench/feedback.py shares its name with the feedback app: load it by path.
    spec = importlib.util.spec_from_file_location("bench_feedback", Path(__file__).with_name("feedback.py"))
    bench_feedback = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_feedback)

    try:
        call_command("migrate", verbosity=0)
        w = bench_feedback.create_world()
        connections.close_all()
        body = b"" if args.get else bench_feedback.post_body(w)
        handler = WSGIHandler()

        def environ():
            env = {
                "REQUEST_METHOD": "GET" if args.get else "POST",
                "PATH_INFO": args.path,
                "QUERY_STRING": "",
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": "80",
                "HTTP_HOST": "127.0.0.1",
                "HTTP_X_FORWARDED_PROTO": "https",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "REMOTE_ADDR": "127.0.0.1",
                "wsgi.version": (1, 0),
                "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(body),
                "wsgi.errors": sys.stderr,
                "wsgi.multithread": False,
                "wsgi.multiprocess": True,
                "wsgi.run_once": False,
                "CONTENT_TYPE": "application/json",
                "CONTENT_LENGTH": str(len(body)),
            }
            if not args.no_auth:
                env["HTTP_AUTHORIZATION"] = f"Bearer {w.api_key}"
            return env

        statuses: dict[str, int] = {}

        def one():
            out = handler(
                environ(),
                lambda status, headers, exc_info=None: statuses.__setitem__(
                    status, statuses.get(status, 0) + 1
                ),
            )
            b"".join(out)
            if hasattr(out, "close"):
                out.close()

        for _ in range(20):  # warm-up: imports, connection, caches
            one()
        statements: list[str] = []

        def log(execute, sql, params, many, context):
            statements.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(log):
            one()
        print(f"SQL statements in one request: {len(statements)}")
        for sql in statements:
            print("   ", " ".join(sql.split())[:160])

        statuses.clear()
        profiler = None
        if args.profile == "cprofile":
            import cProfile

            profiler = cProfile.Profile(time.process_time)  # CPU, not waits on PostgreSQL or Redis
            profiler.enable()
        elif args.profile == "pyinstrument":
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
        with connection.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            (backend,) = cur.fetchone()
        db_cpu = _cpu_seconds(backend)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(args.requests):
            one()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        db_cpu = _cpu_seconds(backend) - db_cpu
        if args.profile == "cprofile":
            import pstats

            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(60)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
        elif args.profile == "pyinstrument":
            profiler.stop()
            print(profiler.output_text(unicode=True, color=False, show_all=False))
        print(f"statuses: {statuses}")
        print(
            f"{args.requests} requests: {1000 * cpu / args.requests:.2f} ms CPU here, "
            f"{1000 * db_cpu / args.requests:.2f} ms in the PostgreSQL backend, "
            f"{1000 * wall / args.requests:.2f} ms wall per request; load {os.getloadavg()[0]:.2f}"
        )
    finally:
        connections.close_all()
        if not args.keep_db:
            recreate_database(admin_url, args.db_name, drop_only=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
