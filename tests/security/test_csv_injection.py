"""Spreadsheet formula injection: no exported cell starts with = + - @ tab or CR as text.

Every CSV/XLSX writer in the application is listed in WRITERS with the test that proves its
escaping on real output (the per-area tests are not repeated here); a writer added anywhere else
fails test_every_spreadsheet_writer_is_known until it is escaped and listed. The end-to-end case
here is the one the issue names: cells imported from a CSV come back escaped in the exports.
"""

from __future__ import annotations

import ast
import csv
import html
import io
import re
import zipfile
from pathlib import Path

import pytest

from alignment import charts
from cem.tenancy import tenant_context
from feedback import models as fm
from feedback.exports import FORMULA_PREFIXES, escape_cell
from tests.feedback.conftest import make_survey

ROOT = Path(__file__).resolve().parents[2]
APPS = ("cem", "feedback", "audits", "learning", "incentives", "alignment")
PREFIXES = ("=", "+", "-", "@", "\t", "\r")
PAYLOADS = [f'{p}HYPERLINK("http://evil.test","x")' for p in PREFIXES] + ["-2+3+cmd|' /C calc'!A0"]

# module → the tests that read its real output with hostile text in it
WRITERS = {
    "feedback/exports.py": [
        "tests/feedback/test_exports.py::test_text_cells_that_look_like_formulas_are_escaped",
        "tests/feedback/test_exports.py::test_xlsx_export_has_the_same_content",
        "tests/feedback/test_review_workflows.py::test_export_escapes_formula_topics",
        "tests/security/test_csv_injection.py::test_cells_imported_from_csv_are_escaped_in_exports",
    ],
    "audits/payments.py": [
        "tests/audits/test_ratings_payments.py::test_export_csv_has_every_column_and_escapes_formulas",
    ],
    "incentives/bonus.py": ["tests/incentives/test_bonus.py (manager named =HYPERLINK(1))"],
    "alignment/charts.py": [
        "tests/alignment/test_dashboard_store.py::test_heatmap_and_matrix_csv_rows_and_formula_escaping",
        "tests/alignment/test_dashboard_overview_pages.py::test_csv_cells_are_formula_escaped",
        "tests/security/test_csv_injection.py::test_chart_csv_escapes_cells_and_labels",
    ],
}
WRITER_CALLS = {("csv", "writer"), ("csv", "DictWriter"), ("xlsxwriter", "Workbook")}


def _safe(cell: str) -> bool:
    if not cell.startswith(FORMULA_PREFIXES):
        return True
    # A plain negative number is data, not a formula.
    return bool(re.fullmatch(r"-\d+(\.\d+)?", cell))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_escape_cell_neutralises_every_prefix(payload):
    assert escape_cell(payload) == "'" + payload
    assert escape_cell("plain text") == "plain text" and escape_cell(-5) == -5 and escape_cell(None) is None


def test_every_spreadsheet_writer_is_known():
    found = set()
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    owner = node.func.value
                    if isinstance(owner, ast.Name) and (owner.id, node.func.attr) in WRITER_CALLS:
                        found.add(str(path.relative_to(ROOT)))
    assert found == set(WRITERS), f"CSV/XLSX writers changed: {sorted(found ^ set(WRITERS))}"
    for module in WRITERS:
        source = (ROOT / module).read_text()
        assert "escape_cell" in source or "csv_cell" in source, f"{module} writes cells without escaping"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_chart_csv_escapes_cells_and_labels(payload):
    columns = [("name", payload), ("n", "n"), ("tags", "tags")]
    text = charts.csv_text(columns, [{"name": payload, "n": -3, "tags": [payload]}])
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            assert _safe(cell), repr(cell)


def _xlsx_texts(xlsx: bytes) -> list[str]:
    """Every text of the first sheet (inline in constant-memory mode, else shared strings)."""
    with zipfile.ZipFile(io.BytesIO(xlsx)) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
        assert "<f>" not in sheet  # nothing is written as a formula
        shared = z.read("xl/sharedStrings.xml").decode() if "xl/sharedStrings.xml" in z.namelist() else ""
    texts = re.findall(r"<t[^>]*>(.*?)</t>", sheet + shared, re.S)
    return [html.unescape(t) for t in texts]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_cells_imported_from_csv_are_escaped_in_exports(
    world, api, fmt, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    org = world.a.org
    survey, _version, _questions = make_survey(org, name="Imported")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["survey", "external_id", "location", "submitted_at", "nps", "comment"])
    for i, payload in enumerate(PAYLOADS):
        writer.writerow([survey.pk, f"imp-{i}", "a-n1", "2026-01-03T10:00:00Z", 9, payload])
    resp = api(key=world.a.api_key).post(
        "/api/v1/responses/bulk/",
        out.getvalue().encode(),
        content_type="text/csv",
        HTTP_ACCEPT="application/json",
    )
    assert resp.status_code == 200, resp.content
    assert {r["status"] for r in resp.json()["results"]} == {"created"}
    # Stored as sent (the import trims surrounding whitespace): escaping is the export's job.
    expected = {payload.strip() for payload in PAYLOADS}
    with tenant_context(org):
        stored = set(fm.Answer.objects.filter(question_key="comment").values_list("text", flat=True))
    assert stored == expected

    admin = api(world.users["admin"])
    with django_capture_on_commit_callbacks(execute=True):
        job = admin.post("/api/v1/exports/", {"format": fmt, "survey": survey.pk}, format="json")
    assert job.status_code in (200, 201, 202), job.content
    download = admin.get(f"/api/v1/exports/{job.json()['id']}/download/")
    assert download.status_code == 200
    content = b"".join(download.streaming_content)
    if fmt == "csv":
        cells = [c for row in csv.reader(io.StringIO(content.decode("utf-8-sig"))) for c in row]
    else:
        cells = _xlsx_texts(content)
    assert all(_safe(c) for c in cells), [c for c in cells if not _safe(c)]
    for text in expected:
        assert escape_cell(text) in cells, text
