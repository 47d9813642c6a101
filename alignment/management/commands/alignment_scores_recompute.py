"""``manage.py alignment_scores_recompute [--org slug] [--since YYYY-MM-DD]``

Recomputes the alignment scores (alignment/scores.py) of every scope and period with rollup data
— for every organization unless ``--org`` names one; ``--since`` limits it to the periods from
the ones holding that day. Run after a bulk load or ``alignment_rebuild --replace``.
"""

from __future__ import annotations

import datetime as dt
import time

from django.core.management.base import BaseCommand, CommandError

from alignment import scores
from cem.models import Organization
from cem.tenancy import tenant_context, unscoped


class Command(BaseCommand):
    help = "Recompute the alignment scores of every scope and period from the rollup."

    def add_arguments(self, parser):
        parser.add_argument("--org", help="the organization's slug (default: every organization)")
        parser.add_argument("--since", type=dt.date.fromisoformat, help="first local day (YYYY-MM-DD)")

    def handle(self, *args, **opts):
        with unscoped():
            orgs = Organization.objects.order_by("slug")
            if opts["org"]:
                orgs = orgs.filter(slug=opts["org"])
            orgs = list(orgs.values_list("pk", "slug"))
        if not orgs:
            raise CommandError(f"--org: no organization with slug {opts['org']!r}")
        for org_id, slug in orgs:
            started = time.perf_counter()
            with tenant_context(org_id):
                written = scores.recompute_all(org_id, since=opts["since"])
            self.stdout.write(f"{slug}: {written} alignment scores in {time.perf_counter() - started:.1f}s")
