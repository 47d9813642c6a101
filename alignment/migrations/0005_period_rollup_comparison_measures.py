"""PeriodRollup also keeps the measures the store dashboard compares with the region and the
company (NPS, CSAT, CES, FCR, audit and monitoring scores): the triggers of 0004 are replaced with
the longer measure list and the existing rollup rows of those measures are summed in."""

from django.db import migrations

SCORE_MEASURES = ("std_feedback", "std_audit", "std_monitoring", "lesson_std", "points")
COMPARISON_MEASURES = ("nps", "csat", "ces", "fcr", "audit", "monitoring")


def _list(measures) -> str:
    return ", ".join(f"'{m}'" for m in measures)


_COLUMNS = "organization_id, day, location_id, standard_id, category, measure, n, total, sumsq, top, bottom"
_SOURCES = {
    "insert": f"SELECT {_COLUMNS}, 1 AS sign FROM new_rows",
    "update": f"SELECT {_COLUMNS}, 1 AS sign FROM new_rows UNION ALL SELECT {_COLUMNS}, -1 FROM old_rows",
    "delete": f"SELECT {_COLUMNS}, -1 AS sign FROM old_rows",
}
_VALUES = ("n", "total", "sumsq", "top", "bottom")


def _function(op: str, measures) -> str:
    source = _SOURCES[op]
    sums = ", ".join(f"sum(d.sign * d.{c})" for c in _VALUES)
    nonzero = " OR ".join(f"sum(d.sign * d.{c}) <> 0" for c in _VALUES)
    return f"""
CREATE OR REPLACE FUNCTION alignment_rollup_derived_{op}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('alignment.derived_by_caller', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO alignment_periodrollup AS p
        (organization_id, period, period_start, location_id, standard_id, category, measure,
         rows, n, total, sumsq, top, bottom)
    SELECT d.organization_id, k.period,
           CASE k.period WHEN 'day' THEN d.day ELSE date_trunc(k.period, d.day::timestamp)::date END,
           d.location_id, d.standard_id, d.category, d.measure, sum(d.sign), {sums}
      FROM ({source}) d
     CROSS JOIN (VALUES ('day'), ('week'), ('month'), ('quarter')) k (period)
     WHERE d.measure IN ({_list(measures)})
     GROUP BY 1, 2, 3, 4, 5, 6, 7
    HAVING sum(d.sign) <> 0 OR {nonzero}
     ORDER BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (organization_id, period, period_start, location_id, standard_id, category, measure)
    DO UPDATE SET rows = p.rows + EXCLUDED.rows, n = p.n + EXCLUDED.n, total = p.total + EXCLUDED.total,
                  sumsq = p.sumsq + EXCLUDED.sumsq, top = p.top + EXCLUDED.top, bottom = p.bottom + EXCLUDED.bottom;
    INSERT INTO alignment_rollupgeneration AS g (organization_id, location_id, generation)
    SELECT DISTINCT d.organization_id, d.location_id, 1 FROM ({source}) d ORDER BY 1, 2
    ON CONFLICT (organization_id, location_id) DO UPDATE SET generation = g.generation + 1;
    RETURN NULL;
END
$$;
"""


_BACKFILL = f"""
INSERT INTO alignment_periodrollup
    (organization_id, period, period_start, location_id, standard_id, category, measure,
     rows, n, total, sumsq, top, bottom)
SELECT r.organization_id, k.period,
       CASE k.period WHEN 'day' THEN r.day ELSE date_trunc(k.period, r.day::timestamp)::date END,
       r.location_id, r.standard_id, r.category, r.measure,
       count(*), sum(r.n), sum(r.total), sum(r.sumsq), sum(r.top), sum(r.bottom)
  FROM alignment_rollup r
 CROSS JOIN (VALUES ('day'), ('week'), ('month'), ('quarter')) k (period)
 WHERE r.measure IN ({_list(COMPARISON_MEASURES)})
 GROUP BY 1, 2, 3, 4, 5, 6, 7;
"""
_UNFILL = f"DELETE FROM alignment_periodrollup WHERE measure IN ({_list(COMPARISON_MEASURES)});"


class Migration(migrations.Migration):
    dependencies = [("alignment", "0004_period_rollup_generation_pending_scores")]

    operations = [
        migrations.RunSQL(
            # The system flag lets the backfill read and write every organization's rows under RLS.
            "SELECT set_config('app.system', 'on', true);"
            + "".join(_function(op, SCORE_MEASURES + COMPARISON_MEASURES) for op in _SOURCES)
            + _BACKFILL,
            reverse_sql="SELECT set_config('app.system', 'on', true);"
            + _UNFILL
            + "".join(_function(op, SCORE_MEASURES) for op in _SOURCES),
        )
    ]
