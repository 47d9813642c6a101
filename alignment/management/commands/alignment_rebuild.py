"""``manage.py alignment_rebuild [--org slug] [--check | --repair | --replace] [--from D --to D]``

Rebuilds organizations' rollups from raw data in SQL (alignment/rebuild.py) and

- ``--check`` (the default): compares with the stored rollup and records a RollupCheck; exits
  non-zero when anything differs, printing a sample;
- ``--repair``: the nightly task's run: compare, confirm, repair the days that differ, check again;
- ``--replace``: swaps the whole stored rollup and every RollupSource for the rebuild (after a
  bulk load or a change of the contribution rules; writes to the rollup wait while it runs).

Every organization unless ``--org`` names one. ``--from``/``--to`` limit check and repair to
those local days.
"""

from __future__ import annotations

import datetime as dt
import time

from django.core.management.base import BaseCommand, CommandError

from alignment import rebuild
from cem.models import Organization
from cem.tenancy import tenant_context, unscoped


class Command(BaseCommand):
    help = "Rebuild the alignment rollup from raw data: check, repair or replace."

    def add_arguments(self, parser):
        parser.add_argument("--org", help="the organization's slug (default: every organization)")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--check", action="store_const", const="check", dest="mode")
        mode.add_argument("--repair", action="store_const", const="repair", dest="mode")
        mode.add_argument("--replace", action="store_const", const="replace", dest="mode")
        parser.add_argument(
            "--from", dest="first", type=dt.date.fromisoformat, help="first local day (YYYY-MM-DD)"
        )
        parser.add_argument(
            "--to", dest="last", type=dt.date.fromisoformat, help="last local day (YYYY-MM-DD)"
        )

    def handle(self, *args, **opts):
        mode = opts["mode"] or "check"
        window = self._window(opts, mode)
        with unscoped():
            orgs = Organization.objects.order_by("slug")
            if opts["org"]:
                orgs = orgs.filter(slug=opts["org"])
            orgs = list(orgs.values_list("pk", "slug"))
        if not orgs:
            raise CommandError(f"--org: no organization with slug {opts['org']!r}")
        differing = []
        for org_id, slug in orgs:
            t0 = time.perf_counter()
            with tenant_context(org_id):
                if mode == "replace":
                    timings = rebuild.replace(org_id)
                    self.stdout.write(
                        f"{slug}: replaced with {timings['rollup_rows']} rollup rows and "
                        f"{timings['source_rows']} sources in {time.perf_counter() - t0:.1f} s"
                    )
                    continue
                check = rebuild.verify(org_id, repair=mode == "repair", window=window)
            line = f"{slug}: {check.rows_compared} rows compared, {check.differences} differ"
            if check.differences and mode == "repair":
                line += ", repaired" if check.repaired else ", NOT repaired (see the log)"
            self.stdout.write(f"{line} ({time.perf_counter() - t0:.1f} s, check #{check.pk})")
            if check.differences:
                if not (mode == "repair" and check.repaired):
                    differing.append(slug)
                for item in check.sample[:10]:
                    self.stdout.write(
                        f"    {item['key']}: stored {item['stored']}, rebuilt {item['rebuilt']}"
                    )
        if differing:
            raise CommandError(f"the stored rollup differs from the rebuild for: {', '.join(differing)}")

    @staticmethod
    def _window(opts, mode):
        first, last = opts["first"], opts["last"]
        if first is None and last is None:
            return None
        if mode == "replace":
            raise CommandError("--from/--to: --replace always rebuilds the whole rollup")
        if first is None or last is None:
            raise CommandError("--from and --to go together")
        if last < first:
            raise CommandError("--to: before --from")
        return rebuild.Window.between(first, last)
