"""Personal invitation links: GET only reads, POST stores once, friendly pages, language, paging."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.core import signing
from django.db import connection
from django.test import Client
from django.utils import timezone

from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context, unscoped
from feedback import models as fm
from feedback.services import response_record
from feedback.tokens import new_token


def make_invitation(
    sw, *, org=None, survey=None, version=None, locale="en", status="sent", expires_in=7, **kw
):
    org = org or sw.world.a.org
    survey = survey or sw.survey
    raw, hashed = new_token()
    with tenant_context(org):
        version = version or survey.versions.order_by("-number").first()
        inv = fm.Invitation.objects.create(
            organization=org,
            survey=survey,
            version=version,
            delivery_channel=kw.pop("delivery_channel", "email"),
            locale=locale,
            token_hash=hashed,
            status=status,
            send_at=timezone.now() - dt.timedelta(hours=1),
            expires_at=timezone.now() + dt.timedelta(days=expires_in),
            **kw,
        )
    return inv, f"/r/i/{raw}/"


def counts():
    with unscoped():
        return (fm.Response.objects.count(), fm.Answer.objects.count(), m.OutboxEvent.objects.count())


def page(resp) -> str:
    return resp.content.decode()


def test_get_shows_the_form_and_creates_nothing(sw, client):
    inv, url = make_invitation(sw, interaction=sw.world.a.interactions["a-n1"])
    before = counts()
    for _ in range(3):  # link scanners and previews open links more than once
        resp = client.get(url)
        assert resp.status_code == 200
    html = page(resp)
    assert 'data-testid="question-nps"' in html and 'data-testid="submit"' in html
    assert "How likely are you to recommend us?" in html
    assert "<script>" not in html and "<nav" not in html.split("<main", 1)[0]  # own layout, no inline JS
    # NPS as eleven radio buttons, 0 to 10
    assert html.count('name="q-nps"') == 11
    assert counts() == before
    with tenant_context(sw.world.a.org):
        inv.refresh_from_db()
        assert inv.status == "sent" and inv.responded_at is None


def test_post_stores_once_with_the_interaction_dimensions(sw, client):
    interaction = sw.world.a.interactions["a-n1"]
    inv, url = make_invitation(sw, interaction=interaction, employee=sw.world.a.employees["a-n1"])
    resp = client.post(url, {"q-nps": "9", "q-csat": "4", "q-fcr": "yes", "q-comment": "Great staff"})
    assert resp.status_code == 200, page(resp)
    assert 'data-testid="thank-you"' in page(resp)
    with tenant_context(sw.world.a.org):
        [response] = fm.Response.objects.all()
        assert response.invitation_id == inv.pk and response.interaction_id == interaction.pk
        assert response.source == "email" and response.locale == "en"
        assert response.location_id == sw.world.a.locations["a-n1"].pk
        assert response.employee_id == sw.world.a.employees["a-n1"].pk
        assert response.touchpoint_id == sw.world.a.touchpoint.pk
        answers = {a.question_key: a for a in fm.Answer.objects.filter(response=response)}
        assert (
            answers["nps"].number == 9
            and answers["fcr"].number == 1
            and answers["comment"].text == "Great staff"
        )
        inv.refresh_from_db()
        assert inv.status == "responded" and inv.responded_at is not None

    # The link is single use: a second submit and a later visit see a friendly notice.
    again = client.post(url, {"q-nps": "1"})
    assert again.status_code == 410 and 'data-testid="notice-used"' in page(again)
    visit = client.get(url)
    assert visit.status_code == 410 and "already" in page(visit).lower()
    with unscoped():
        assert fm.Response.objects.count() == 1


def test_a_response_already_stored_for_the_invitation_wins(sw, client):
    """The unique constraint backs the conditional claim: a racing writer cannot add a second one."""
    inv, url = make_invitation(sw)
    with tenant_context(sw.world.a.org):
        response_record(
            organization=sw.world.a.org,
            actor=Actor.system(),
            survey=sw.survey,
            values={"nps": 5},
            source="email",
            invitation=inv,
        )
    resp = client.post(url, {"q-nps": "10"})
    assert resp.status_code == 410 and 'data-testid="notice-used"' in page(resp)
    with unscoped():
        assert fm.Response.objects.count() == 1
    with tenant_context(sw.world.a.org):
        inv.refresh_from_db()
        assert inv.status == "sent"  # the claim was rolled back with the failed insert


@pytest.mark.parametrize("how", ["past", "status"])
def test_expired_link_is_a_friendly_page(sw, client, how):
    if how == "past":
        _inv, url = make_invitation(sw, expires_in=-1)
    else:
        _inv, url = make_invitation(sw, status="expired")
    for resp in (client.get(url), client.post(url, {"q-nps": "9"})):
        assert resp.status_code == 410
        assert 'data-testid="notice-expired"' in page(resp) and "expired" in page(resp)
    with unscoped():
        assert fm.Response.objects.count() == 0


def test_unknown_token_is_a_friendly_404(sw, client):
    for resp in (client.get("/r/i/not-a-real-token-at-all/"), client.post("/r/i/not-a-real-token-at-all/")):
        assert resp.status_code == 404
        assert 'data-testid="notice-not_found"' in page(resp)


def test_spanish_with_fallback_to_the_default_locale(sw, client):
    _inv, url = make_invitation(sw, locale="es")
    html = page(client.get(url))
    assert '<html lang="es">' in html
    assert "¿Qué probabilidad hay de que nos recomiende?" in html
    # "ces" has no Spanish text: the English one, never a key or an empty label.
    assert "How easy was it to find what you needed?" in html
    assert "<legend></legend>" not in html and ">ces<" not in html
    assert "Muy satisfecho" in html and "Nada probable" in html and "Enviar" in html
    # ?lang= switches among the survey's languages.
    assert "How likely are you to recommend us?" in page(client.get(url + "?lang=en"))
    # Errors come back in the respondent's language, next to the question.
    resp = client.post(url, {"q-csat": "4", "lang": "es"})
    html = page(resp)
    assert resp.status_code == 200 and 'data-testid="error-nps"' in html
    assert "Esta pregunta es obligatoria." in html
    assert 'value="4" checked' in html  # what was answered is kept
    with unscoped():
        assert fm.Response.objects.count() == 0


def test_accept_language_picks_among_the_survey_locales(sw, client):
    _inv, url = make_invitation(sw, locale="fr")  # not offered: the browser's language decides
    html = page(client.get(url, HTTP_ACCEPT_LANGUAGE="es-MX,es;q=0.9,en;q=0.5"))
    assert "¿Qué probabilidad hay de que nos recomiende?" in html
    html = page(client.get(url, HTTP_ACCEPT_LANGUAGE="de-DE"))
    assert "How likely are you to recommend us?" in html


@pytest.fixture
def paged(sw):
    """Page 1: nps; page 2: why_low (only when nps ≤ 6); page 3: csat and comment."""
    org = sw.world.a.org
    with tenant_context(org):
        survey = fm.Survey.objects.create(
            organization=org, name="Paged", status="active", default_locale="en", locales=["en", "es"]
        )
        version = fm.SurveyVersion.objects.create(organization=org, survey=survey, number=1)
        src = sw.questions
        for page_no, key in ((1, "nps"), (2, "why_low"), (3, "csat"), (3, "comment")):
            q = src[key]
            fm.Question.objects.create(
                organization=org,
                version=version,
                key=key,
                position=q.position,
                page=page_no,
                type=q.type,
                required=q.required,
                text=q.text,
                choices=q.choices,
                show_if=q.show_if,
            )
    return survey


def test_multi_page_progress_and_skip_logic(sw, client, paged):
    _inv, url = make_invitation(sw, survey=paged)
    html = page(client.get(url))
    assert 'data-testid="progress"' in html and "Page 1 of 3" in html and "<progress" in html
    assert 'data-testid="question-nps"' in html and 'data-testid="question-csat"' not in html
    state = html.split('name="state" value="', 1)[1].split('"', 1)[0]

    # A promoter skips the "what went wrong" page.
    resp = client.post(url, {"state": state, "q-nps": "9"})
    html = page(resp)
    assert "Page 2 of 2" in html and 'data-testid="question-csat"' in html
    assert 'data-testid="question-why_low"' not in html
    state2 = html.split('name="state" value="', 1)[1].split('"', 1)[0]

    # Back keeps answers of earlier pages; a detractor now gets the extra page.
    html = page(client.post(url, {"state": state2, "nav": "back", "q-csat": "4"}))
    assert "Page 1 of" in html and 'value="9" checked' in html
    state3 = html.split('name="state" value="', 1)[1].split('"', 1)[0]
    html = page(client.post(url, {"state": state3, "q-nps": "3"}))
    assert "Page 2 of 3" in html and 'data-testid="question-why_low"' in html
    assert "Staff" in html
    state4 = html.split('name="state" value="', 1)[1].split('"', 1)[0]
    html = page(client.post(url, {"state": state4, "q-why_low": "staff"}))
    assert "Page 3 of 3" in html and 'value="4" checked' in html  # csat kept from before
    state5 = html.split('name="state" value="', 1)[1].split('"', 1)[0]
    resp = client.post(url, {"state": state5, "q-csat": "4", "q-comment": "ok"})
    assert 'data-testid="thank-you"' in page(resp)
    with tenant_context(sw.world.a.org):
        [response] = fm.Response.objects.filter(survey=paged)
        keys = set(fm.Answer.objects.filter(response=response).values_list("question_key", flat=True))
        assert keys == {"nps", "why_low", "csat", "comment"}


def test_hidden_answers_from_an_earlier_path_are_not_stored(sw, client, paged):
    _inv, url = make_invitation(sw, survey=paged)
    html = page(client.get(url))
    state = html.split('name="state" value="', 1)[1].split('"', 1)[0]
    html = page(client.post(url, {"state": state, "q-nps": "2"}))
    state = html.split('name="state" value="', 1)[1].split('"', 1)[0]
    html = page(client.post(url, {"state": state, "q-why_low": "wait"}))
    state = html.split('name="state" value="', 1)[1].split('"', 1)[0]
    html = page(client.post(url, {"state": state, "nav": "back"}))
    state = html.split('name="state" value="', 1)[1].split('"', 1)[0]
    html = page(client.post(url, {"state": state, "nav": "back"}))
    state = html.split('name="state" value="', 1)[1].split('"', 1)[0]
    html = page(client.post(url, {"state": state, "q-nps": "10"}))
    state = html.split('name="state" value="', 1)[1].split('"', 1)[0]
    client.post(url, {"state": state, "q-csat": "5"})
    with tenant_context(sw.world.a.org):
        keys = set(fm.Answer.objects.values_list("question_key", flat=True))
    assert keys == {"nps", "csat"}


def test_forged_or_foreign_state_restarts_the_survey(sw, client, paged):
    _inv, url = make_invitation(sw, survey=paged)
    _other, other_url = make_invitation(sw, survey=paged)
    html = page(client.get(other_url))
    foreign = html.split('name="state" value="', 1)[1].split('"', 1)[0]
    forged = signing.dumps({"v": 0, "p": 3, "a": {"nps": "0"}}, salt="wrong")
    for state in (foreign, forged):
        resp = client.post(url, {"state": state, "q-csat": "5"})
        assert resp.status_code == 200 and 'data-testid="notice"' in page(resp)
        assert "Page 1 of" in page(resp)
    with unscoped():
        assert fm.Response.objects.count() == 0


def test_invitation_of_org_a_only_ever_touches_org_a(sw, client, api):
    world = sw.world
    with tenant_context(world.b.org):
        fm.Question.objects.filter(version__survey=sw.survey_b, key="nps").update(
            text={"en": "Beta secret question"}
        )
        b_question = fm.Question.objects.get(version__survey=sw.survey_b, key="nps")
    _inv, url = make_invitation(sw)
    # Even with org B's admin signed in (tenant B in the session), the token decides the tenant.
    client.force_login(world.users["outsider"])
    html = page(client.get(url))
    assert "Store visit" in html and "Beta" not in html
    # B's question ids sent through A's link are refused, and nothing is written.
    resp = client.post(url, {"q-nps": "9", f"q-{b_question.pk}": "5"})
    assert resp.status_code == 400
    with unscoped():
        assert fm.Response.objects.count() == 0
    resp = client.post(url, {"q-nps": "9"})
    assert 'data-testid="thank-you"' in page(resp)
    with unscoped():
        assert list(fm.Response.objects.values_list("organization_id", flat=True)) == [world.a.org.pk]
    # An org B invitation token resolves to B's survey, never A's.
    _inv_b, url_b = make_invitation(sw, org=world.b.org, survey=sw.survey_b)
    html = page(client.get(url_b))
    assert "Beta secret question" in html and "Store visit" not in html


@pytest.mark.django_db(transaction=True)
def test_concurrent_submits_of_one_invitation_store_one_response(sw):
    _inv, url = make_invitation(sw)
    barrier = threading.Barrier(6)
    results = []

    def submit():
        barrier.wait()
        results.append(Client().post(url, {"q-nps": "9"}).status_code)
        connection.close()

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [410] * 5
    with unscoped():
        assert fm.Response.objects.count() == 1
