"""Run every benchmark in bench/ at sizes that finish in bounded time; write bench/RESULTS.md.

    bench/run_all                      # everything (~45 min on the 2-core machine), then RESULTS.md
    bench/run_all --only ingest load   # some of them (RESULTS.md then holds only those)
    bench/run_all --list               # the benches, their command lines and time limits

Each bench already measures its figures beside a raw baseline of its own in the same process
(raw COPY, raw SQL, raw GROUP BY, …); RESULTS.md keeps its output as printed. On top, this script
measures the machine's raw PostgreSQL and Redis at the start of the run (``pgbench`` select-only
and simple-update, ``redis-benchmark``; the same functions as bench/load.py) and states the
machine, the date, the commit, and the load average before and after every bench: the machine
may be shared, and a figure means little without the load it was measured under.

The code measured is a ``git archive`` of HEAD (the working tree may hold someone's half-written
module); the benches run from it with this checkout's .venv. A bench that fails or runs past its
limit is reported as such and the rest still run.
"""

# Fixed command lines of our own (git, tar, redis-server, the benches).
# ruff: noqa: S603, S607

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import baselines, free_port, load_average  # noqa: E402
from bench.scratch import DEFAULT_DB_URL, with_db  # noqa: E402

# name, arguments, time limit (s), what the sizes are. Sizes are cut from each bench's defaults
# so the whole run stays near 45 minutes on 2 cores; the README of each bench gives its full run.
BENCHES: list[tuple[str, list[str], int, str]] = [
    (
        "ingest",
        ["bench/ingest.py", "--rows", "10000", "100000", "--repeat", "1"],
        600,
        "10k and 100k interactions, best of 1 (default: best of 3)",
    ),
    (
        "feedback",
        [
            "bench/feedback.py",
            "--responses",
            "200000",
            "--ingest-rows",
            "10000",
            "--repeat",
            "1",
            "--post-seconds",
            "10",
        ],
        900,
        "200k responses (default 1M), ingest 10k rows, best of 1, 10 s per POST run",
    ),
    ("profile_post", ["bench/profile_post.py", "--requests", "500"], 300, "500 POSTs in one process"),
    (
        "audits",
        ["bench/audits.py", "--approvals", "100", "--submits", "100"],
        600,
        "100 approvals, 100 submits per thread count (default 200/200)",
    ),
    (
        "learning",
        ["bench/learning.py", "--publishes", "40", "--repeat", "15"],
        900,
        "40 publishes (default 100), 15 handler runs per history size (default 30), H = 30,000",
    ),
    (
        "incentives",
        ["bench/incentives.py", "--redeems", "200", "--events", "2000", "--latency", "50"],
        900,
        "200 redemption attempts, 2,000-event burst, 50 timed events (default 600/10,000/100)",
    ),
    (
        "dashboard",
        [
            "bench/dashboard.py",
            "--responses",
            "1000000",
            "--history",
            "--requests",
            "30",
            "--raw-repeat",
            "3",
            "--events",
            "20",
            "--handler-runs",
            "5",
        ],
        1500,
        "1M responses in one step (default 1M then 10M), 30 requests per panel, raw GROUP BYs 3 runs, "
        "20 events",
    ),
    (
        "load",
        [
            "bench/load.py",
            "--users",
            "4",
            "8",
            "12",
            "16",
            "24",
            "--step-seconds",
            "45",
            "--duration",
            "120",
            "--drain-seconds",
            "60",
            "--tree",
            "working",
        ],
        1500,
        "users stepped 4-24 (45 s each) to the target, then 120 s at the best level "
        "(default: 60 s steps, 300 s)",
    ),
]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=[b[0] for b in BENCHES])
    p.add_argument("--skip", nargs="+", default=[], choices=[b[0] for b in BENCHES])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    p.add_argument("--list", action="store_true")
    return p.parse_args()


def sh(*argv: str) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine(db_url: str) -> list[str]:
    import psutil
    import psycopg

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    with psycopg.connect(with_db(db_url, "postgres")) as conn:
        pg = conn.execute("SELECT version()").fetchone()[0].split(" on ")[0]
        pg_settings = dict(
            conn.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name IN "
                "('shared_buffers', 'max_connections', 'synchronous_commit', 'jit', 'max_wal_size')"
            ).fetchall()
        )
    import django

    return [
        f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: `nproc` = {os.cpu_count()}, {cpu}, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}",
        f"- Load average at the start (1/5/15 min): {load_average()}",
        f"- {pg} ({', '.join(f'{k} {v}' for k, v in sorted(pg_settings.items()))}); "
        f"{sh('redis-server', '--version').split(' sha=')[0]}; both on this host, over TCP on 127.0.0.1",
        f"- Python {platform.python_version()}, Django {django.get_version()}",
    ]


def main() -> int:
    args = parse_args()
    chosen = [b for b in BENCHES if (not args.only or b[0] in args.only) and b[0] not in args.skip]
    if args.list:
        for name, argv, limit, sizes in chosen:
            print(f"{name:13} {' '.join(argv)}  (limit {limit} s; {sizes})")
        return 0
    base_url = os.environ.get("DATABASE_URL", DEFAULT_DB_URL)
    workdir = Path(tempfile.mkdtemp(prefix="cem_bench_all_"))
    tree = workdir / "tree"
    tree.mkdir()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    started = time.time()
    head = ["# Benchmark results", "", f"Written by `bench/run_all` from commit `{commit}`.", ""]
    head += machine(base_url)
    print("\n".join(head), flush=True)

    redis_port = free_port()
    redis = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(1)
        raw = baselines(with_db(base_url, "postgres"), base_url, redis_port, workdir)
    finally:
        redis.terminate()
        redis.wait()
    body = ["", "## Raw baselines (this machine, this run)", ""]
    body += [
        f"Measured first, load average {raw.pop('load_average')}. Every bench below also measures its own "
        "raw baseline (raw COPY, raw SQL, raw GROUP BY) in the same process, printed beside its figure.",
        "",
    ]
    body += ["| what | rate | latency |", "|---|---|---|"]
    for name, v in raw.items():
        if "tps" in v:
            body.append(
                f"| {name} (8 clients, 15 s, scale 10) | {v['tps']:,.0f} transactions/s | "
                f"avg {v['latency_ms']} ms |"
            )
        else:
            body.append(
                f"| {name} (8 clients, 100k requests) | {v['rps']:,.0f} requests/s | p50 {v['p50_ms']} ms |"
            )
    body += ["", "## Sizes used", "", "| bench | command | limit | sizes |", "|---|---|---|---|"]
    body += [f"| {n} | `{' '.join(a)}` | {lim // 60} min | {s} |" for n, a, lim, s in chosen]
    print("\n".join(body), flush=True)

    sections = []
    for name, argv, limit, sizes in chosen:
        before = load_average()
        t0 = time.time()
        log = workdir / f"{name}.log"
        command = [str(ROOT / ".venv" / "bin" / "python"), *argv]
        if name == "load":
            command += ["--json", str(workdir / "load.json")]
        print(
            f"\n[{dt.datetime.now().strftime('%H:%M:%S')}] {name}: {' '.join(argv)} (load {before})",
            flush=True,
        )
        with log.open("w") as out:
            # Its own session: past the limit the bench and whatever it started (gunicorn, workers) go.
            proc = subprocess.Popen(
                command,
                cwd=tree,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(tree), "BENCH_COMMIT": commit},
                start_new_session=True,
            )
            try:
                code = proc.wait(timeout=limit)
                outcome = "ok" if code == 0 else f"exit code {code}"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                outcome = f"stopped after its {limit} s limit"
        seconds = time.time() - t0
        after = load_average()
        text = log.read_text(errors="replace")
        if name == "load" and (workdir / "load.json").exists():
            import json

            text = json.loads((workdir / "load.json").read_text()).get("markdown", text)
        kept = [line for line in text.splitlines() if not line.startswith("Traceback")]
        section = [
            f"## {name}",
            "",
            f"`{' '.join(argv)}` — {outcome}, {seconds / 60:.1f} min; load average before {before}, "
            f"after {after}. Sizes: {sizes}.",
            "",
            *kept[-400:],
            "",
        ]
        if outcome != "ok":
            section += ["Last lines of its log:", "", "```", *text.splitlines()[-15:], "```", ""]
        sections.append("\n".join(section))
        print(f"  {outcome} in {seconds:.0f} s (load {after})", flush=True)
        args.out.write_text("\n".join(head + body) + "\n\n" + "\n".join(sections))

    total = (time.time() - started) / 60
    tail = ["", f"All of it took {total:.0f} min; load average at the end {load_average()}.", ""]
    args.out.write_text("\n".join(head + body) + "\n\n" + "\n".join(sections) + "\n".join(tail))
    shutil.rmtree(tree, ignore_errors=True)
    print(f"wrote {args.out} ({total:.0f} min); logs in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
