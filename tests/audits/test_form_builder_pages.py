"""Audit form builder pages: build a form in the browser, errors on the named field, scoring,
versions, permissions, another tenant's ids, query counts."""

from decimal import Decimal as D

import pytest
from django.urls import reverse

from audits import audit_services
from audits.models import (
    Audit,
    AuditForm,
    AuditFormVersion,
    FormItem,
    FormSection,
    Program,
    Scenario,
    ScenarioLeg,
)
from cem.tenancy import tenant_context
from tests import factories as f
from tests.audits.sweep_forms import SYSTEM, make_audit, make_form

SECTION_FIELDS = ("key", "title_en", "title_es", "channel_kind")
ITEM_FIELDS = (
    "key",
    "section",
    "type",
    "text_en",
    "text_es",
    "weight",
    "standard",
    "pass_fraction",
    "scale_min",
    "scale_max",
    "target_min",
    "target_max",
    "plausible_max",
    "choices",
)
ITEM_BOOLEANS = ("required", "critical", "comment_required_on_fail")


def _login(client, world, persona="admin"):
    client.force_login(world.users[persona])
    return client


def _html(resp, status=200) -> str:
    assert resp.status_code == status, (resp.status_code, resp.content.decode()[:3000])
    return resp.content.decode()


def _post_data(sections, items, op="publish") -> dict:
    data = {"op": op}
    for prefix, rows in (("s", sections), ("i", items)):
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": str(len(rows)),
                f"{prefix}-INITIAL_FORMS": "0",
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "500",
            }
        )
    for i, row in enumerate(sections):
        for name in SECTION_FIELDS:
            data[f"s-{i}-{name}"] = str(row.get(name, "") or "")
    for i, row in enumerate(items):
        for name in ITEM_FIELDS:
            value = row.get(name, "")
            data[f"i-{i}-{name}"] = "" if value is None else str(value)
        for name in ITEM_BOOLEANS:
            if row.get(name, name != "critical"):
                data[f"i-{i}-{name}"] = "on"
    return data


@pytest.fixture
def std_b(world):
    return f.StandardFactory(organization=world.a.org, code="acme-checkout", title="Checkout")


def _rows(std_a: int, std_b: int):
    sections = [
        {"key": "greeting", "title_en": "Greeting", "title_es": "Saludo", "channel_kind": "in_store"},
        {"key": "checkout", "title_en": "Checkout"},
    ]
    items = [
        {"key": "greeted", "section": "greeting", "type": "yes_no_na", "text_en": "Greeted?",
         "text_es": "¿Saludó?", "weight": "2", "standard": std_a},
        {"key": "smile", "section": "greeting", "type": "scale", "text_en": "Smile", "weight": "1",
         "standard": std_a, "scale_min": 1, "scale_max": 5, "pass_fraction": "0.5"},
        {"key": "wait", "section": "greeting", "type": "time", "text_en": "Wait (s)", "weight": "1",
         "standard": std_a, "target_max": "60", "plausible_max": "3600"},
        {"key": "id_check", "section": "checkout", "type": "yes_no", "text_en": "Asked for ID?",
         "weight": "1", "standard": std_b, "critical": True},
        {"key": "upsell", "section": "checkout", "type": "choice", "text_en": "Upsell", "weight": "1",
         "standard": std_b, "choices": "asked | 1 | Asked | Preguntó\nhinted | 0.5 | Hinted\nnone | 0 | None",
         "pass_fraction": "0.5"},
        {"key": "basket", "section": "checkout", "type": "numeric", "text_en": "Items bagged", "weight": "1",
         "standard": std_b, "target_min": "1", "required": False, "comment_required_on_fail": False},
        {"key": "notes", "section": "checkout", "type": "text", "text_en": "Notes", "weight": "",
         "required": False},
        {"key": "receipt", "section": "checkout", "type": "photo", "text_en": "Receipt", "weight": ""},
    ]  # fmt: skip
    return sections, items


def _form_named(world, name) -> AuditForm:
    with tenant_context(world.a.org):
        return AuditForm.objects.get(name=name)


def _build(client, world, std_b, name="acme builder", **settings) -> AuditForm:
    data = {"name": name, "kind": "mystery_shop", "critical_policy": "cap", "critical_cap": "40", **settings}
    resp = client.post(reverse("audit_form_create"), data)
    assert resp.status_code == 302, resp.content.decode()[:3000]
    form = _form_named(world, name)
    assert resp["Location"] == reverse("audit_form_structure", args=[form.pk])
    sections, items = _rows(world.a.standard.pk, std_b.pk)
    resp = client.post(reverse("audit_form_structure", args=[form.pk]), _post_data(sections, items))
    assert resp.status_code == 302, resp.content.decode()[:5000]
    return form


# --- building -----------------------------------------------------------------------------------


def test_build_a_form_with_sections_and_items_through_the_pages(world, client, std_b):
    _login(client, world)
    html = _html(client.get(reverse("audit_forms")))
    assert 'data-testid="create-form"' in html and 'data-testid="empty"' in html
    assert f'href="{reverse("audit_forms")}"' in _html(client.get(reverse("home")))  # the nav link
    html = _html(client.get(reverse("audit_form_create")))
    assert 'data-testid="audit-form-settings"' in html

    form = _build(client, world, std_b)
    with tenant_context(world.a.org):
        form.refresh_from_db()
        assert (form.critical_policy, form.critical_cap) == ("cap", D("40"))
        [version] = AuditFormVersion.objects.filter(form=form)
        sections = {s.key: s for s in FormSection.objects.filter(version=version)}
        items = {i.key: i for i in FormItem.objects.filter(version=version).select_related("section")}
    assert version.number == 1
    assert sections["greeting"].title == {"en": "Greeting", "es": "Saludo"}
    assert sections["greeting"].channel_kind == "in_store" and sections["checkout"].position == 1
    assert list(items) == ["greeted", "smile", "wait", "id_check", "upsell", "basket", "notes", "receipt"]
    greeted, upsell = items["greeted"], items["upsell"]
    assert (greeted.type, greeted.weight, greeted.standard_id) == ("yes_no_na", D("2"), world.a.standard.pk)
    assert greeted.text == {"en": "Greeted?", "es": "¿Saludó?"} and greeted.section.key == "greeting"
    assert items["id_check"].critical and not greeted.critical
    assert upsell.choices == [
        {"value": "asked", "label": {"en": "Asked", "es": "Preguntó"}, "points": "1"},
        {"value": "hinted", "label": {"en": "Hinted"}, "points": "0.5"},
        {"value": "none", "label": {"en": "None"}, "points": "0"},
    ]
    assert upsell.pass_fraction == D("0.5") and upsell.section.key == "checkout"
    assert (items["wait"].target_max, items["wait"].plausible_max) == (D("60"), D("3600"))
    assert (items["smile"].scale_min, items["smile"].scale_max) == (1, 5)
    basket = items["basket"]
    assert not basket.required and not basket.comment_required_on_fail and basket.target_min == D("1")
    assert items["notes"].weight == 0 and items["receipt"].type == "photo" and items["receipt"].required

    html = _html(client.get(reverse("audit_form_detail", args=[form.pk])))
    assert 'data-testid="section-greeting"' in html and "Asked for ID?" in html
    assert html.count('data-testid="item-row"') == 16  # the current version, and again in its history
    assert "caps the audit at 40%" in html and 'data-testid="critical"' in html
    # The editor shows the stored structure again, options in their one-line form.
    html = _html(client.get(reverse("audit_form_structure", args=[form.pk])))
    assert 'value="greeted"' in html and "asked | 1 | Asked | Preguntó" in html
    assert 'data-testid="in-place-notice"' in html
    html = _html(client.get(reverse("audit_forms")))
    assert "acme builder" in html and 'data-testid="form-items">8<' in html
    assert 'data-testid="form-version">v1<' in html and "Published" in html


def test_editor_adds_moves_and_removes_rows_without_storing(world, client, std_b):
    _login(client, world)
    client.post(
        reverse("audit_form_create"), {"name": "acme rows", "kind": "monitoring", "critical_policy": "zero"}
    )
    form = _form_named(world, "acme rows")
    url = reverse("audit_form_structure", args=[form.pk])
    html = _html(client.get(url))
    assert (
        'name="s-0-key"' in html and 'value="section-1"' in html and 'data-testid="section-empty-0"' in html
    )

    sections = [
        {"key": "call", "title_en": "Call", "channel_kind": "phone"},
        {"key": "visit", "title_en": "Visit"},
    ]
    html = _html(client.post(url, _post_data(sections, [], op="add-item-1"), HTTP_HX_REQUEST="true"))
    assert 'name="i-0-key"' in html and 'value="item-1"' in html
    assert '<option value="visit" selected>' in html

    items = [
        {"key": "a", "section": "visit", "type": "yes_no"},
        {"key": "b", "section": "call", "type": "yes_no"},
        {"key": "c", "section": "call", "type": "yes_no"},
    ]
    # Items are shown under their sections (call first), and move inside their section.
    html = _html(client.post(url, _post_data(sections, items, op="up-item-2")))
    assert html.index('value="c"') < html.index('value="b"') < html.index('value="a"')
    html = _html(client.post(url, _post_data(sections, items, op="down-section-0")))
    assert html.index('value="visit"') < html.index('value="call"')
    assert html.index('value="a"') < html.index('value="b"')
    # Removing a section takes its items along.
    html = _html(client.post(url, _post_data(sections, items, op="remove-section-0")))
    assert 'value="call"' not in html and 'value="b"' not in html and 'value="a"' in html
    html = _html(client.post(url, _post_data(sections, items, op="remove-item-0")))
    assert 'value="a"' not in html and 'value="c"' in html
    html = _html(client.post(url, _post_data(sections, items, op="add-section")))
    assert 'name="s-2-key"' in html and 'value="section-3"' in html
    with tenant_context(world.a.org):
        assert not AuditFormVersion.objects.filter(form=form).exists()


# --- errors -------------------------------------------------------------------------------------


def _errors(html: str, name: str) -> str:
    marker = f'data-testid="error-{name}">'
    assert marker in html, f"no error shown on {name}"
    start = html.index(marker) + len(marker)
    return html[start : html.index("</small>", start)]


def test_bad_input_is_shown_on_the_named_field(world, client, std_b):
    _login(client, world)
    form = _build(client, world, std_b)
    url = reverse("audit_form_structure", args=[form.pk])
    sections, items = _rows(world.a.standard.pk, std_b.pk)
    other_std = f.StandardFactory(organization=world.b.org)
    items[0]["standard"] = ""  # scored, but linked to no standard
    items[1]["scale_min"], items[1]["scale_max"] = 5, 5
    items[2]["weight"] = "0"
    items[4]["choices"] = "asked | 1.5 | Asked"
    items[5]["target_min"] = "lots"
    items[6]["critical"] = True  # a text item cannot be critical
    items[7]["key"] = "greeted"
    html = _html(client.post(url, _post_data(sections, items)), 400)
    assert "Enter a number" in _errors(html, "i-5-target_min")  # the form's own check, first
    items[5]["target_min"] = "1"
    html = _html(client.post(url, _post_data(sections, items)), 400)
    assert "linked to a service standard" in _errors(html, "i-0-standard")
    assert "greater than scale_min" in _errors(html, "i-1-scale_max")
    assert "weight greater than 0" in _errors(html, "i-2-weight")
    assert "choices[0].points" in _errors(html, "i-4-choices")
    assert "Only scored items can be critical" in _errors(html, "i-6-critical")
    assert "used twice" in _errors(html, "i-7-key")
    assert 'data-testid="form-errors"' in html and "<script>" not in html

    # Another tenant's standard is not an option; a section key twice names the second one.
    items = _rows(world.a.standard.pk, std_b.pk)[1]
    items[0]["standard"] = other_std.pk
    sections[1]["key"] = "greeting"
    html = _html(client.post(url, _post_data(sections, items)), 400)
    assert "valid choice" in _errors(html, "i-0-standard")
    sections[1]["key"] = "Not a key!"
    html = _html(client.post(url, _post_data(sections, items)), 400)
    assert _errors(html, "s-1-key")
    html = _html(client.post(url, _post_data(sections[:1], [])), 400)
    assert "Add at least one item." in html
    # A bare post (no management form) is a 400 too, never a 500.
    assert client.post(url, {}).status_code == 400
    with tenant_context(world.a.org):
        assert AuditFormVersion.objects.filter(form=form).count() == 1
        assert FormItem.objects.filter(version__form=form).count() == 8

    # Settings: the cap is a percentage; names are unique in the organization.
    html = _html(
        client.post(
            reverse("audit_form_create"),
            {"name": "acme builder", "kind": "mystery_shop", "critical_policy": "zero"},
        ),
        400,
    )
    assert "already exists" in _errors(html, "name")
    html = _html(
        client.post(
            reverse("audit_form_edit", args=[form.pk]),
            {"name": "acme builder", "kind": "mystery_shop", "critical_policy": "cap", "critical_cap": "150"},
        ),
        400,
    )
    assert _errors(html, "critical_cap")
    html = _html(client.post(reverse("audit_form_create"), {"name": "", "kind": "nope"}), 400)
    assert _errors(html, "name") and _errors(html, "kind") and _errors(html, "critical_policy")


# --- scoring and versions -----------------------------------------------------------------------


def _score(world, version, answers) -> Audit:
    audit = make_audit(world.a.org, version, answers)
    with tenant_context(world.a.org):
        return audit_services.audit_score_compute(organization=world.a.org, actor=SYSTEM, audit=audit)


def test_weights_na_and_critical_policy_set_in_the_pages_drive_scoring(world, client, std_b):
    _login(client, world)
    form = _build(client, world, std_b)
    with tenant_context(world.a.org):
        version = AuditFormVersion.objects.get(form=form)
    answers = {
        "greeted": "n/a",
        "smile": "5",
        "wait": "30",
        "id_check": "no",
        "upsell": "hinted",
        "basket": "3",
    }
    # N/A leaves the denominator: earned 1 + 1 + 0 + 0.5 + 1 of weights 1 + 1 + 1 + 1 + 1.
    audit = _score(world, version, answers)
    assert audit.raw_score == D("70.00") and audit.critical_failed
    assert audit.score == D("40.00")  # capped at the form's 40
    audit = _score(world, version, {**answers, "greeted": "yes", "id_check": "yes"})
    # The weight of 2 counts: (2 + 1 + 1 + 1 + 0.5 + 1) / 7.
    assert (audit.score, audit.critical_failed) == (D("92.86"), False)

    resp = client.post(
        reverse("audit_form_edit", args=[form.pk]),
        {"name": "acme builder", "kind": "mystery_shop", "critical_policy": "zero", "critical_cap": ""},
    )
    assert resp.status_code == 302, resp.content.decode()[:2000]
    audit = _score(world, version, answers)
    assert (audit.score, audit.raw_score) == (D("0.00"), D("70.00"))
    html = _html(client.get(reverse("audit_form_detail", args=[form.pk])))
    assert "scores the audit 0" in html


def test_editing_a_used_form_publishes_a_new_version_and_old_audits_keep_theirs(world, client, std_b):
    _login(client, world)
    form = _build(client, world, std_b)
    url = reverse("audit_form_structure", args=[form.pk])
    sections, items = _rows(world.a.standard.pk, std_b.pk)

    # Unused: publishing edits version 1 in place.
    items[0]["weight"] = "3"
    assert client.post(url, _post_data(sections, items)).status_code == 302
    with tenant_context(world.a.org):
        v1 = AuditFormVersion.objects.get(form=form)
        assert FormItem.objects.get(version=v1, key="greeted").weight == D("3")
    audit = make_audit(world.a.org, v1, {"greeted": "yes"})

    html = _html(client.get(url))
    assert 'data-testid="in-use-notice"' in html and "Publish version 2" in html
    items[0]["weight"] = "4"
    items.append({"key": "farewell", "section": "checkout", "type": "yes_no", "text_en": "Said goodbye?",
                  "weight": "1", "standard": std_b.pk})  # fmt: skip
    resp = client.post(url, _post_data(sections, items), follow=True)
    assert "Published version 2. Audits made with version 1 keep it." in _html(resp)
    with tenant_context(world.a.org):
        v2 = AuditFormVersion.objects.get(form=form, number=2)
        assert FormItem.objects.get(version=v2, key="greeted").weight == D("4")
        assert FormItem.objects.filter(version=v2).count() == 9
        assert FormItem.objects.get(version=v1, key="greeted").weight == D("3")
        assert FormItem.objects.filter(version=v1).count() == 8
        audit.refresh_from_db()
        assert audit.version_id == v1.pk
    html = _html(client.get(reverse("audit_form_detail", args=[form.pk])))
    assert html.count('data-testid="version-row"') == 2
    html = _html(client.get(reverse("audit_forms")))
    assert 'data-testid="form-version">v2<' in html and 'data-testid="form-items">9<' in html


def test_sections_show_the_scenario_legs_scored_in_them(world, client, std_b):
    form, _version = make_form(world.a.org, world.a.standard, std_b, name="acme legs")
    with tenant_context(world.a.org):
        program = Program.objects.create(
            organization=world.a.org, name="acme calls", kind="mystery_shop", form=form
        )
        scenario = Scenario.objects.create(
            organization=world.a.org, program=program, title="Call then visit", instructions="acme"
        )
        ScenarioLeg.objects.create(organization=world.a.org, scenario=scenario, channel_kind="phone",
                                   section_key="greeting")  # fmt: skip
        ScenarioLeg.objects.create(organization=world.a.org, scenario=scenario, position=1,
                                   channel_kind="in_store", section_key="gone")  # fmt: skip
    _login(client, world, "manager")
    html = _html(client.get(reverse("audit_form_detail", args=[form.pk])))
    assert 'data-testid="section-legs-greeting"' in html and "Call then visit" in html
    assert 'data-testid="unplaced-legs"' in html and "<code>gone</code>" in html
    assert "acme calls" in html

    # The editor says which legs a section scores, and which legs name a section it lacks.
    _login(client, world)
    html = _html(client.get(reverse("audit_form_structure", args=[form.pk])))
    assert 'data-testid="section-legs-0"' in html and 'data-testid="section-legs-1"' not in html
    assert 'data-testid="unplaced-legs"' in html and "<code>gone</code>" in html

    # Programs check their form's kind, so a form in a program keeps it.
    edit = reverse("audit_form_edit", args=[form.pk])
    assert "Programs use this form, so its kind stays." in _html(client.get(edit))
    data = {"name": "acme legs", "kind": "monitoring", "critical_policy": "zero", "critical_cap": "0"}
    assert client.post(edit, data).status_code == 302
    with tenant_context(world.a.org):
        assert AuditForm.objects.get(pk=form.pk).kind == "mystery_shop"


# --- permissions, tenants, queries --------------------------------------------------------------


def test_manager_views_but_cannot_edit_and_employee_is_refused(world, client, std_b):
    form, _version = make_form(world.a.org, world.a.standard, std_b, name="acme perms")
    detail = reverse("audit_form_detail", args=[form.pk])
    writes = [
        reverse("audit_form_create"),
        reverse("audit_form_edit", args=[form.pk]),
        reverse("audit_form_structure", args=[form.pk]),
    ]
    _login(client, world, "manager")
    html = _html(client.get(reverse("audit_forms")))
    assert "acme perms" in html and 'data-testid="create-form"' not in html
    html = _html(client.get(detail))
    assert 'data-testid="edit-structure"' not in html and 'data-testid="edit-settings"' not in html
    for url in writes:
        assert client.get(url).status_code == 403
        assert client.post(url, {"name": "acme hacked", "kind": "monitoring"}).status_code == 403
    sections, items = _rows(world.a.standard.pk, std_b.pk)
    assert client.post(writes[2], _post_data(sections, items)).status_code == 403

    _login(client, world, "employee")
    assert f'href="{reverse("audit_forms")}"' not in _html(client.get(reverse("home")))
    for url in [reverse("audit_forms"), detail, *writes]:
        assert client.get(url).status_code in (403, 404)
    with tenant_context(world.a.org):
        assert AuditFormVersion.objects.filter(form=form).count() == 1
        assert not AuditForm.objects.filter(name="acme hacked").exists()


def test_another_tenants_form_is_a_404(world, client, std_b):
    form, _version = make_form(world.a.org, world.a.standard, std_b, name="acme secret form")
    _login(client, world, "outsider")
    for name in ("audit_form_detail", "audit_form_edit", "audit_form_structure"):
        url = reverse(name, args=[form.pk])
        assert client.get(url).status_code == 404
        assert client.post(url, {"op": "publish"}).status_code in (404, 405)
    assert "acme secret form" not in _html(client.get(reverse("audit_forms")))


def test_form_list_query_count_does_not_grow_with_forms(world, client, std_b, django_assert_max_num_queries):
    for n in range(6):
        form, version = make_form(world.a.org, world.a.standard, std_b, name=f"acme list {n}")
        if n % 2:
            make_audit(world.a.org, version, {"greeted": "yes"})
    with tenant_context(world.a.org):
        AuditForm.objects.create(organization=world.a.org, name="acme empty", kind="monitoring")
    _login(client, world)
    with django_assert_max_num_queries(8):
        html = _html(client.get(reverse("audit_forms")))
    assert html.count('data-testid="form-row"') == 7
    assert html.count("In use") == 3 and "Draft — no items yet" in html
    with django_assert_max_num_queries(13):
        _html(client.get(reverse("audit_form_detail", args=[form.pk])))
    # The standards behind every item row's select are read once, not once per row.
    with django_assert_max_num_queries(11):
        html = _html(client.get(reverse("audit_form_structure", args=[form.pk])))
    assert html.count('data-testid="item-up-') == 6
