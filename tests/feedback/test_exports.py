"""Response exports: pivoted CSV/XLSX content, formula escaping, scope, progress, downloads."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from xml.etree import ElementTree

import pytest
from django.db.models.query import QuerySet
from django.utils import timezone

from cem import models as m
from cem.tenancy import tenant_context
from feedback import exports
from feedback import models as fm
from feedback.demo import CommentBank, ResponseBatch, load_responses, reserve_response_ids

pytestmark = pytest.mark.django_db

PER_STORE = 100  # 300 responses in org A
NASTY = {
    '=HYPERLINK("http://evil.test","click")': '\'=HYPERLINK("http://evil.test","click")',
    "+1 would come again": "'+1 would come again",
    "-5 stars, awful": "'-5 stars, awful",
    "@SUM(A1:A9) rude staff": "'@SUM(A1:A9) rude staff",
}


def _load(org, survey, versions: list[tuple], locations, employees, n_per_store: int, *, start=0):
    """n_per_store responses per location; the first versions' responses lack the v2-only key."""
    bank = CommentBank()
    now = timezone.now()
    with tenant_context(org):
        ids = reserve_response_ids(n_per_store * len(locations))
        batch = ResponseBatch()
        k = 0
        for loc_code, location in sorted(locations.items()):
            for i in range(n_per_store):
                version, questions = versions[0] if i % 2 else versions[-1]
                nps = (i + start) % 11
                answers = [(questions["nps"].pk, nps, None, None)]
                if "csat" in questions and i % 3 == 0:
                    answers.append((questions["csat"].pk, 1 + i % 5, None, None))
                if "why_low" in questions and nps <= 6:
                    answers.append((questions["why_low"].pk, None, None, "wait"))
                if "effort" in questions:
                    answers.append((questions["effort"].pk, 7, None, None))
                if i % 10 == 0:
                    text = list(NASTY)[(i // 10) % len(NASTY)] if loc_code.endswith("n1") else "Great staff!"
                    answers.append((questions["comment"].pk, None, bank.ref(text), None))
                batch.add(
                    ids[k],
                    answers,
                    survey_id=survey.pk,
                    version_id=version.pk,
                    source="email" if i % 2 else "qr",
                    locale="es" if i % 4 == 0 else "en",
                    submitted_at=now - dt.timedelta(days=i % 30, minutes=k),
                    location_id=location.pk,
                    employee_id=employees[loc_code].pk,
                    category="critical",
                )
                k += 1
        load_responses(org.pk, batch, bank)
    return ids


@pytest.fixture
def data(sw):
    world = sw.world
    a = world.a
    with tenant_context(a.org):
        v2 = fm.SurveyVersion.objects.create(organization=a.org, survey=sw.survey, number=2)
        q2 = {}
        for key, q in sw.questions.items():
            q2[key] = fm.Question.objects.create(
                organization=a.org, version=v2, key=key, type=q.type, position=q.position, text=q.text
            )
        q2["effort"] = fm.Question.objects.create(
            organization=a.org, version=v2, key="effort", type="ces", position=9, text={"en": "Effort?"}
        )
    _load(a.org, sw.survey, [(sw.version, sw.questions), (v2, q2)], a.locations, a.employees, PER_STORE)
    b = world.b
    with tenant_context(b.org):
        vb = fm.SurveyVersion.objects.get(survey=sw.survey_b)
        qb = {q.key: q for q in fm.Question.objects.filter(version=vb)}
    _load(b.org, sw.survey_b, [(vb, qb)], b.locations, b.employees, 20)
    return sw


def _request(api, user, capture, **body):
    with capture(execute=True):
        resp = api(user).post("/api/v1/exports/", {"format": "csv", **body}, format="json")
    return resp


def _csv(content: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


def _body(resp) -> bytes:
    return b"".join(resp.streaming_content)


def _xlsx_rows(content: bytes) -> list[list[str]]:
    """Cell values of the first sheet, as text (enough to check an export without openpyxl)."""
    ns = {"s": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        shared = []
        if "xl/sharedStrings.xml" in z.namelist():
            root = ElementTree.fromstring(z.read("xl/sharedStrings.xml"))  # noqa: S314 - our own file
            shared = ["".join(t.text or "" for t in si.iter(f"{{{ns['s']}}}t")) for si in root]
        sheet = ElementTree.fromstring(z.read("xl/worksheets/sheet1.xml"))  # noqa: S314 - our own file
    rows = []
    for row in sheet.iter(f"{{{ns['s']}}}row"):
        cells = {}
        for c in row.findall("s:c", ns):
            col = re.match(r"[A-Z]+", c.get("r")).group()
            index = 0
            for ch in col:
                index = index * 26 + ord(ch) - 64
            if c.get("t") == "inlineStr":
                value = "".join(t.text or "" for t in c.iter(f"{{{ns['s']}}}t"))
            elif c.get("t") == "s":
                value = shared[int(c.find("s:v", ns).text)]
            else:
                v = c.find("s:v", ns)
                value = v.text if v is not None else ""
            cells[index - 1] = value
        rows.append([cells.get(i, "") for i in range(max(cells) + 1)] if cells else [])
    return rows


def test_csv_export_pivots_answers_one_row_per_response(
    data, api, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    world = data.world
    resp = _request(api, world.users["admin"], django_capture_on_commit_callbacks)
    assert resp.status_code == 201, resp.content
    job_id = resp.json()["id"]
    detail = api(world.users["admin"]).get(f"/api/v1/exports/{job_id}/").json()
    assert detail["status"] == "done" and detail["progress"] == 100.0
    assert detail["rows_done"] == detail["rows_total"] == 3 * PER_STORE
    assert detail["download_url"] == f"/api/v1/exports/{job_id}/download/"

    with tenant_context(world.a.org):
        job = fm.ExportJob.objects.get(pk=job_id)
    assert re.fullmatch(rf"exports/{world.a.org.pk}/[0-9a-f]{{32}}\.csv", job.file_path)
    assert (tmp_path / job.file_path).is_file()

    download = api(world.users["admin"]).get(detail["download_url"])
    assert download.status_code == 200
    assert "attachment" in download["Content-Disposition"]
    rows = _csv(_body(download))
    assert len(rows) == 3 * PER_STORE
    header = list(rows[0])
    assert header[: len(exports.BASE_COLUMNS)] == list(exports.BASE_COLUMNS)
    # One column per question key, versions combined: v2's extra key is there once.
    for key in ("nps", "csat", "ces", "fcr", "why_low", "comment", "effort"):
        assert header.count(key) == 1, key
    assert {"comment_sentiment", "comment_sentiment_score", "comment_topics"} <= set(header)
    assert {r["location_code"] for r in rows} == {"a-n1", "a-n2", "a-s1"}  # not org B's b-1
    assert len({r["response_id"] for r in rows}) == len(rows)
    # Newer version answers the extra key; the older one leaves it empty.
    assert {r["effort"] for r in rows} == {"7", ""}
    low = [r for r in rows if r["nps"] and int(r["nps"]) <= 6]
    assert low and all(r["why_low"] == "wait" for r in low)
    great = [r for r in rows if r["comment"] == "Great staff!"]
    assert great and all(r["comment_sentiment"] == "positive" for r in great)
    assert all("staff" in r["comment_topics"] for r in great)
    assert {r["locale"] for r in rows} == {"en", "es"}


def test_text_cells_that_look_like_formulas_are_escaped(
    data, api, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    world = data.world
    with tenant_context(world.a.org):
        loc = world.a.locations["a-n1"]
        loc.name = "=cmd|' /C calc'!A0"
        loc.save()
    job_id = _request(api, world.users["admin"], django_capture_on_commit_callbacks).json()["id"]
    rows = _csv(_body(api(world.users["admin"]).get(f"/api/v1/exports/{job_id}/download/")))
    comments = {r["comment"] for r in rows if r["location_code"] == "a-n1" and r["comment"]}
    assert comments == set(NASTY.values())
    assert {r["location"] for r in rows if r["location_code"] == "a-n1"} == {"'=cmd|' /C calc'!A0"}
    for r in rows:
        for value in r.values():
            assert not value.startswith(("=", "+", "@")), value
    # Numbers are not text: a score of 0 stays 0.
    assert "0" in {r["nps"] for r in rows}


def test_xlsx_export_has_the_same_content(data, api, django_capture_on_commit_callbacks, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    world = data.world
    resp = _request(api, world.users["admin"], django_capture_on_commit_callbacks, format="xlsx")
    job_id = resp.json()["id"]
    download = api(world.users["admin"]).get(f"/api/v1/exports/{job_id}/download/")
    assert download.status_code == 200
    content = _body(download)
    assert content[:2] == b"PK"
    rows = _xlsx_rows(content)
    header, body = rows[0], rows[1:]
    assert header[: len(exports.BASE_COLUMNS)] == list(exports.BASE_COLUMNS)
    assert len(body) == 3 * PER_STORE
    col = header.index("comment")
    assert {r[col] for r in body if len(r) > col and r[col]} == {*NASTY.values(), "Great staff!"}
    # Formulas are never written as formulas.
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        assert b"<f>" not in z.read("xl/worksheets/sheet1.xml")


def test_filters_survey_location_dates_and_source(
    data, api, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    world = data.world
    today = timezone.localdate()
    resp = _request(
        api,
        world.users["admin"],
        django_capture_on_commit_callbacks,
        survey=data.survey.pk,
        location=world.a.locations["a-n2"].pk,
        source="qr",
        date_from=str(today - dt.timedelta(days=9)),
        date_to=str(today),
    )
    assert resp.status_code == 201, resp.content
    rows = _csv(_body(api(world.users["admin"]).get(f"/api/v1/exports/{resp.json()['id']}/download/")))
    assert rows and {r["location_code"] for r in rows} == {"a-n2"} and {r["source"] for r in rows} == {"qr"}
    assert all(r["submitted_at"][:10] >= str(today - dt.timedelta(days=10)) for r in rows)
    assert len(rows) < PER_STORE / 2

    bad = api(world.users["admin"]).post(
        "/api/v1/exports/",
        {"format": "csv", "date_from": "2026-02-01", "date_to": "2026-01-01"},
        format="json",
    )
    assert bad.status_code == 400 and "date_to" in bad.json()
    assert (
        api(world.users["admin"]).post("/api/v1/exports/", {"format": "pdf"}, format="json").status_code
        == 400
    )


def test_store_manager_exports_only_their_store(
    data, api, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    world = data.world
    manager = world.users["manager"]  # store a-n1
    resp = _request(api, manager, django_capture_on_commit_callbacks)
    assert resp.status_code == 201, resp.content
    job_id = resp.json()["id"]
    assert resp.json()["filters"]["scope"] == {"location": world.a.locations["a-n1"].pk}
    rows = _csv(_body(api(manager).get(f"/api/v1/exports/{job_id}/download/")))
    assert len(rows) == PER_STORE and {r["location_code"] for r in rows} == {"a-n1"}

    # Another store is refused, not silently emptied.
    other = api(manager).post(
        "/api/v1/exports/", {"format": "csv", "location": world.a.locations["a-s1"].pk}, format="json"
    )
    assert other.status_code == 400 and "location" in other.json()

    regional = world.users["regional"]  # region north: a-n1, a-n2
    job_r = _request(api, regional, django_capture_on_commit_callbacks).json()["id"]
    rows = _csv(_body(api(regional).get(f"/api/v1/exports/{job_r}/download/")))
    assert {r["location_code"] for r in rows} == {"a-n1", "a-n2"}


def test_who_sees_and_downloads_which_export(
    data, api, django_capture_on_commit_callbacks, settings, tmp_path, client
):
    settings.MEDIA_ROOT = tmp_path
    world = data.world
    users = world.users
    manager_job = _request(api, users["manager"], django_capture_on_commit_callbacks).json()["id"]
    admin_job = _request(api, users["admin"], django_capture_on_commit_callbacks).json()["id"]

    def download(user, job_id, *, key=None):
        client_ = api(key=key) if key else api(user)
        return client_.get(f"/api/v1/exports/{job_id}/download/").status_code

    # The requester and organization-wide roles.
    assert download(users["manager"], manager_job) == 200
    assert download(users["executive"], manager_job) == 200
    assert download(users["admin"], manager_job) == 200
    # A scoped member never sees someone else's export, even one inside their region.
    assert download(users["regional"], manager_job) == 404
    assert download(users["manager"], admin_job) == 404
    # No exports permission at all.
    for name in ("employee", "trainer", "evaluator", "shopper"):
        assert download(users[name], admin_job) == 403, name
    assert download(None, admin_job, key=world.a.api_key) == 403
    # Another tenant: 404, on the API and on the page.
    assert download(users["outsider"], admin_job) == 404
    client.force_login(users["outsider"])
    assert client.get(f"/feedback/exports/{admin_job}/download/").status_code == 404
    assert client.get(f"/feedback/exports/{admin_job}/").status_code == 404

    listed = {j["id"] for j in api(users["manager"]).get("/api/v1/exports/").json()["results"]}
    assert listed == {manager_job}
    listed = {j["id"] for j in api(users["executive"]).get("/api/v1/exports/").json()["results"]}
    assert listed == {manager_job, admin_job}
    assert api(users["outsider"]).get("/api/v1/exports/").json()["results"] == []

    with tenant_context(world.a.org):
        actions = list(
            m.AuditLog.objects.filter(object_type="feedback.ExportJob").values_list("action", flat=True)
        )
    assert actions.count("export.request") == 2 and actions.count("export.download") == 3


def test_download_of_an_unfinished_export_is_404(data, api, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    world = data.world
    with tenant_context(world.a.org):
        from cem.principals import Actor

        job = exports.export_request(
            organization=world.a.org, actor=Actor.system(), format="csv", filters={}, scope={},
            requested_by=world.users["admin"],
        )  # fmt: skip
    detail = api(world.users["admin"]).get(f"/api/v1/exports/{job.pk}/").json()
    assert detail["status"] == "queued" and detail["download_url"] is None and detail["progress"] == 0
    assert api(world.users["admin"]).get(f"/api/v1/exports/{job.pk}/download/").status_code == 404


def test_build_streams_in_chunks_and_reports_progress(data, settings, tmp_path, monkeypatch):
    """The task never materialises the queryset: a server-side iterator, one answers query and
    one rows_done update per chunk."""
    settings.MEDIA_ROOT = tmp_path
    world = data.world
    monkeypatch.setattr(exports, "CHUNK", 40)
    iterator_calls = []
    real_iterator = QuerySet.iterator

    def spy_iterator(self, chunk_size=None):
        iterator_calls.append((self.model, chunk_size))
        return real_iterator(self, chunk_size=chunk_size)

    def refuse_fetch_all(self):
        if self.model is fm.Response and self._result_cache is None:
            raise AssertionError("the export loaded the whole response queryset")
        return real_fetch_all(self)

    real_fetch_all = QuerySet._fetch_all
    monkeypatch.setattr(QuerySet, "iterator", spy_iterator)
    monkeypatch.setattr(QuerySet, "_fetch_all", refuse_fetch_all)

    seen = []
    real_answers = exports._answers_by_response

    def spy_answers(org_id, ids):
        seen.append((len(ids), fm.ExportJob.objects.get(pk=job.pk).rows_done))
        return real_answers(org_id, ids)

    monkeypatch.setattr(exports, "_answers_by_response", spy_answers)
    with tenant_context(world.a.org):
        from cem.principals import Actor

        job = exports.export_request(
            organization=world.a.org, actor=Actor.system(), format="csv", filters={}, scope={},
            requested_by=world.users["admin"],
        )  # fmt: skip
        from feedback.export_tasks import export_build

        assert export_build(world.a.org.pk, job.pk) == 3 * PER_STORE
        job.refresh_from_db()
    assert (fm.Response, 40) in iterator_calls
    assert [n for n, _ in seen] == [40] * 7 + [20]
    assert [done for _, done in seen] == list(range(0, 3 * PER_STORE, 40))  # progress before each chunk
    assert job.status == "done" and job.rows_done == job.rows_total == 3 * PER_STORE
    assert job.finished_at is not None
    # A redelivered task after success is a no-op.
    with tenant_context(world.a.org):
        assert export_build(world.a.org.pk, job.pk) == 0


def test_a_failed_build_is_marked_failed(data, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path
    world = data.world

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(exports, "_answers_by_response", boom)
    with tenant_context(world.a.org):
        from cem.principals import Actor
        from feedback.export_tasks import export_build

        job = exports.export_request(
            organization=world.a.org, actor=Actor.system(), format="csv", filters={}, scope={}
        )
        with pytest.raises(RuntimeError):
            export_build(world.a.org.pk, job.pk)
        job.refresh_from_db()
    assert job.status == "failed" and "disk full" in job.error
    assert not list(tmp_path.rglob("*.csv"))


def test_page_requests_an_export_and_polls_its_progress(
    data, client, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    world = data.world
    client.force_login(world.users["manager"])
    page = client.get("/feedback/exports/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="format"' in html and "No exports yet" in html
    # Only the manager's store is offered.
    assert "a-n1" in html and "Acme a-s1" not in html

    with tenant_context(world.a.org):
        from cem.principals import Actor

        queued = exports.export_request(
            organization=world.a.org, actor=Actor.system(), format="csv", filters={},
            scope={"location": world.a.locations["a-n1"].pk}, requested_by=world.users["manager"],
        )  # fmt: skip
    fragment = client.get(f"/feedback/exports/{queued.pk}/").content.decode()
    assert f'hx-get="/feedback/exports/{queued.pk}/"' in fragment
    assert 'hx-trigger="every 1s"' in fragment and "<progress" in fragment
    assert "<script" not in fragment and "Download" not in fragment

    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post("/feedback/exports/", {"format": "xlsx", "source": "qr"})
    assert resp.status_code == 302
    with tenant_context(world.a.org):
        job = fm.ExportJob.objects.filter(format="xlsx").get()
    assert job.status == "done" and job.requested_by == world.users["manager"]
    assert job.filters == {"source": "qr", "scope": {"location": world.a.locations["a-n1"].pk}}
    fragment = client.get(f"/feedback/exports/{job.pk}/").content.decode()
    assert "hx-trigger" not in fragment
    assert f'href="/feedback/exports/{job.pk}/download/"' in fragment
    download = client.get(f"/feedback/exports/{job.pk}/download/")
    assert download.status_code == 200 and _body(download)[:2] == b"PK"

    bad = client.post("/feedback/exports/", {"format": "csv", "location": world.a.locations["a-s1"].pk})
    assert bad.status_code == 200 and "Select a valid choice" in bad.content.decode()

    client.force_login(world.users["trainer"])
    assert client.get("/feedback/exports/").status_code == 403
    client.force_login(world.users["executive"])
    assert client.get(f"/feedback/exports/{job.pk}/download/").status_code == 200
