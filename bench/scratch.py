"""What every benchmark here shares: a scratch database, a Django set up without Redis, tables.

Each bench drops and re-creates its own database on the server DATABASE_URL names, so dev data
is never touched, and prints its results as Markdown tables for bench/README.md.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/cem"


def with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def prepare_environment(db_name: str) -> tuple[str, str]:
    """Point Django at the scratch DB and Celery at an in-memory broker; return (bench, admin) URLs."""
    base = os.environ.get("DATABASE_URL", DEFAULT_DB_URL)
    bench_url, admin_url = with_db(base, db_name), with_db(base, "postgres")
    os.environ["DATABASE_URL"] = bench_url
    os.environ["CELERY_BROKER_URL"] = "memory://localhost/"  # outbox kicks go nowhere, fast, without Redis
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"  # never run the handlers inline
    os.environ.setdefault("DEBUG", "false")  # as in production: no query log, no debug cursor
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cem.settings")
    sys.path.insert(0, str(ROOT))
    return bench_url, admin_url


def recreate_database(admin_url: str, db_name: str, *, drop_only: bool = False) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name)))
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))


def setup_django(shared_cache: str | None = None) -> None:
    """django.setup() with the cache in memory, so no bench needs Redis.

    A bench that runs a real Celery worker passes its broker's Redis URL as ``shared_cache``: the
    outbox's on-commit kick is a doorbell in the cache (``cem.events.deliver_on_commit``, SET NX)
    that the worker clears, so both processes must see the same cache, or every kick after the
    first is swallowed until the doorbell expires.
    """
    import django

    django.setup()
    from django.test.utils import override_settings

    if shared_cache:
        from django.conf import settings

        cache = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": shared_cache,
            "KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX", ""),
        }
    else:
        cache = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    override_settings(CACHES={"default": cache}).enable()
    warnings.filterwarnings("ignore", message="No directory at", module="django.core.handlers.base")


def table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
