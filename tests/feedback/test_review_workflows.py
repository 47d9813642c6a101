"""Review findings on the feedback workflows: each test failed before its fix."""

from __future__ import annotations

import datetime as dt

import pytest

from cem import models as m
from cem.tenancy import tenant_context
from feedback import selectors
from tests.feedback.metric_data import Spec, bulk_answers

MADRID = "Europe/Madrid"


# --- metrics: a date "to" bound covers that whole local day --------------------------------------


def test_date_to_bound_includes_the_whole_local_day(sw, api):
    a = sw.world.a
    with tenant_context(a.org):
        m.Organization.objects.filter(pk=a.org.pk).update(time_zone=MADRID)
    # 10:00 and 23:30 on 31 March in Madrid; 00:30 on 1 April in Madrid.
    bulk_answers(
        sw,
        [
            Spec("nps", 0, when=dt.datetime(2026, 3, 31, 8, 0, tzinfo=dt.UTC)),
            Spec("nps", 10, when=dt.datetime(2026, 3, 31, 21, 30, tzinfo=dt.UTC)),
            Spec("nps", 10, when=dt.datetime(2026, 3, 31, 22, 30, tzinfo=dt.UTC)),
        ],
    )
    resp = api(sw.world.users["admin"]).get(
        "/api/v1/metrics/", {"metric": "nps", "from": "2026-03-31", "to": "2026-03-31"}
    )
    assert resp.status_code == 200, resp.content
    assert resp.json()["results"] == [{"group": {}, "value": 0.0, "n": 2}]


def test_parse_bound_date_vs_datetime():
    tz = selectors.zoneinfo.ZoneInfo(MADRID)
    end = selectors.parse_bound("to", "2026-03-31", tz, end=True)
    assert end == dt.datetime(2026, 4, 1, tzinfo=tz)
    start = selectors.parse_bound("from", "2026-03-31", tz, end=False)
    assert start == dt.datetime(2026, 3, 31, tzinfo=tz)
    # An explicit datetime is taken as given (local when it has no offset).
    explicit = selectors.parse_bound("to", "2026-03-31T00:00", tz, end=True)
    assert explicit == dt.datetime(2026, 3, 31, tzinfo=tz)
    with pytest.raises(selectors.MetricQueryError):
        selectors.parse_bound("to", "2026-02-30", tz, end=True)


# --- exports: every text cell is escaped, topics included ----------------------------------------


def test_export_escapes_formula_topics(sw, settings, tmp_path):
    import csv
    import io

    from feedback import exports
    from feedback import models as fm

    settings.MEDIA_ROOT = tmp_path
    a = sw.world.a
    # Topic names come from the organization's settings["feedback_topics"] keys: free text.
    bulk_answers(sw, [Spec("text", None, extra={"text": "slow", "topics": ["=1+1", "wait"]})])
    with tenant_context(a.org):
        job = fm.ExportJob.objects.create(
            organization=a.org, format="csv", filters={"scope": {}}, file_path=f"exports/{a.org.pk}/t.csv"
        )
        assert exports.export_build(job) == 1
    rows = list(csv.DictReader(io.StringIO((tmp_path / job.file_path).read_text("utf-8-sig"))))
    assert rows[0]["comment_topics"] == "'=1+1; wait"
