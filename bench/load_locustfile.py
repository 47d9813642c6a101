"""The load benchmark's simulated people (locust), driven headless by bench/load.py.

Fixtures come from the JSON file named by ``LOAD_FIXTURES`` (bench/load.py writes it after
seeding): anonymous survey links, the integrator key, store managers', regional managers' and
employees' logins, store ids and the catalogue items put up for the run.

The app runs as in production behind a TLS-terminating proxy: every request carries
``X-Forwarded-Proto: https`` and ``X-Forwarded-For`` (one address per simulated person; the web
processes trust one proxy hop, ``NUM_PROXIES=1``), so per-address limits apply per person as they
would in the field. Its cookies are ``Secure``, which a client speaking plain HTTP to gunicorn
would never send back, so each response's cookies are stored again without the flag
(``_keep_cookies``); that is why this uses locust's ``HttpUser`` (requests) rather than
``FastHttpUser``, at ~1 ms more client CPU per request (bench/load.py reports the client's CPU).

Each user class is one kind of person; a failed check (wrong status, a survey that did not say
thanks, a refused redemption, an ingest row not created) is a locust failure, which the bench
counts as an error.
"""

from __future__ import annotations

import html
import itertools
import json
import os
import random
import re
import uuid

from locust import HttpUser, constant_throughput, events, task

with open(os.environ["LOAD_FIXTURES"]) as _file:
    FIXTURES = json.load(_file)
HOSTS = FIXTURES["hosts"]  # one base URL per web process (a load balancer's upstreams)
# Each person sends about one request (or page step) per PACE seconds at most.
PACE = float(os.environ.get("LOAD_PACE", "1.0"))
_ips = itertools.count(1)
_hosts = itertools.count()

INPUT = re.compile(r"<input\b[^>]*>", re.IGNORECASE)
TEXTAREA = re.compile(r'<textarea\b[^>]*name="([^"]+)"', re.IGNORECASE)
ATTR = re.compile(r'(\w[\w-]*)="([^"]*)"')
REDEEM_FORM = re.compile(r'action="(/rewards/catalog/(\d+)/redeem/)"')
COMMENTS = [
    "Quick checkout, friendly staff.",
    "Long queue and nobody at the tills.",
    "The assistant knew the products well.",
    "Store was tidy but the fitting rooms were closed.",
]


def _inputs(page: str) -> list[dict]:
    return [dict(ATTR.findall(tag)) for tag in INPUT.findall(page)]


class Person(HttpUser):
    abstract = True
    wait_time = constant_throughput(1 / PACE)

    def on_start(self):
        n = next(_ips)
        self.ip = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
        self.host = HOSTS[next(_hosts) % len(HOSTS)]
        self.client.base_url = self.host
        self.client.headers.update({"X-Forwarded-Proto": "https", "X-Forwarded-For": self.ip})
        self.rng = random.Random(n)

    def _keep_cookies(self, resp):
        jar = self.__dict__.setdefault("jar", {})
        for response in [*getattr(resp, "history", []), resp]:
            for cookie in response.cookies:
                jar[cookie.name] = cookie.value
        # Replace the session's (Secure, so never sent over http) copies with plain ones.
        self.client.cookies.clear()
        for name, value in jar.items():
            self.client.cookies.set(name, value)

    def _csrf_headers(self) -> dict:
        return {
            "X-CSRFToken": self.__dict__.get("jar", {}).get("csrftoken", ""),
            "Referer": self.host + "/",
            "Origin": self.host.replace("http://", "https://"),
        }

    def request(self, method, url, *, name=None, expect=(200,), check=None, **kw):
        """One request; a status not in ``expect`` or a ``check(resp)`` that returns text fails it."""
        with self.client.request(method, url, name=name or url, catch_response=True, **kw) as resp:
            self._keep_cookies(resp)
            if resp.status_code not in expect:
                resp.failure(f"{resp.status_code}: {resp.text[:160]!r}")
            elif check is not None and (problem := check(resp)):
                resp.failure(problem)
            return resp

    def login(self, email: str):
        page = self.request("GET", "/login/", name="login (page)")
        self._keep_cookies(page)
        fields = _inputs(page.text)
        token = next((i.get("value") for i in fields if i.get("name") == "csrfmiddlewaretoken"), "")
        self.request(
            "POST",
            "/login/",
            name="login",
            data={"username": email, "password": FIXTURES["password"], "csrfmiddlewaretoken": token},
            headers=self._csrf_headers(),
            allow_redirects=False,
            expect=(302,),
            check=lambda r: None if "sessionid" in self.jar else "no session after login",
        )


def _answered(resp) -> str | None:
    """A submit either shows the next page of the survey or says thank you; anything else fails."""
    page = resp.text
    if 'data-testid="thank-you"' in page:
        return None
    if 'data-testid="survey-form"' in page and 'aria-invalid="true"' not in page:
        return None
    found = re.search(r'data-testid="(notice-[\w-]+)"', page)
    return f"not answered: {found.group(1) if found else page[:120]!r}"


class Respondent(Person):
    """A customer scanning a store's QR code: the survey page, then its answers (all pages)."""

    weight = 40

    @task
    def answer_a_survey(self):
        self.client.cookies.clear()  # a new customer: no device cookie, no CSRF cookie yet
        self.jar = {}
        n = next(_ips)
        self.client.headers["X-Forwarded-For"] = f"10.{128 + ((n >> 16) & 127)}.{(n >> 8) & 255}.{n & 255}"
        url = f"/r/a/{self.rng.choice(FIXTURES['anonymous_links'])}/"
        page = self.request("GET", url, name="respondent: survey page").text
        for _step in range(5):
            data = {}
            radios: dict[str, list[str]] = {}
            for field in _inputs(page):
                name = field.get("name", "")
                if field.get("type") == "hidden":
                    data[name] = html.unescape(field.get("value", ""))
                elif field.get("type") == "radio" and name.startswith("q-"):
                    radios.setdefault(name, []).append(html.unescape(field.get("value", "")))
            for name, values in radios.items():
                data[name] = values[-1] if self.rng.random() < 0.6 else self.rng.choice(values)
            for name in TEXTAREA.findall(page):
                if self.rng.random() < 0.5:
                    data[name] = self.rng.choice(COMMENTS)
            data["nav"] = "next"
            headers = self._csrf_headers()
            sent = self.request(
                "POST", url, name="respondent: submit", data=data, headers=headers, check=_answered
            )
            page = sent.text
            if 'data-testid="survey-form"' not in page:
                break


class Integrator(Person):
    """A CRM / point-of-sale feed: single responses as they come, interactions in batches."""

    weight = 20

    def on_start(self):
        super().on_start()
        self.client.headers["Authorization"] = f"Bearer {FIXTURES['api_key']}"

    @task(6)
    def post_a_response(self):
        store = self.rng.choice(FIXTURES["stores"])
        body = {
            "survey": FIXTURES["api_survey"],
            "location": store["code"],
            "source": "api",
            "answers": {
                "nps": self.rng.randint(0, 10),
                "csat": self.rng.randint(1, 5),
                "comment": self.rng.choice(COMMENTS),
            },
        }
        self.request("POST", "/api/v1/responses/", name="api: POST response", json=body, expect=(201,))

    @task(1)
    def post_interactions(self):
        rows = []
        for _ in range(FIXTURES["interactions_per_batch"]):
            store = self.rng.choice(FIXTURES["stores"])
            rows.append(
                {
                    "external_id": f"load-{uuid.uuid4().hex}",
                    "occurred_at": FIXTURES["now"],
                    "location": store["code"],
                    "channel": FIXTURES["channel"],
                    "touchpoint": FIXTURES["touchpoint"],
                    "customer": self.rng.choice(FIXTURES["customers"]),
                    "amount": round(self.rng.uniform(5, 200), 2),
                }
            )

        def all_created(resp):
            created = resp.json().get("created")
            return None if created == len(rows) else f"{created} of {len(rows)} created"

        self.request(
            "POST",
            "/api/v1/interactions/bulk/",
            name="api: POST interactions (batch)",
            json=rows,
            check=all_created,
        )


class Manager(Person):
    """A store or regional manager with the store dashboard open: the page, then its panels
    (the NPS panel polls every 5 s), now and then another store or the data API."""

    weight = 10

    def on_start(self):
        super().on_start()
        self.who = self.rng.choice(FIXTURES["managers"])
        self.login(self.who["email"])
        self.open_page()

    def _store(self) -> int:
        return self.rng.choice(self.who["stores"])

    @task(1)
    def open_page(self):
        self.store = self._store()
        self.request("GET", f"/alignment/stores/{self.store}/", name="dashboard: store page")

    @task(6)
    def poll_nps(self):
        self.request(
            "GET",
            f"/alignment/stores/{self.store}/panels/nps/",
            name="dashboard: panel (poll)",
            headers={"HX-Request": "true"},
        )

    @task(2)
    def api_panel(self):
        panel = self.rng.choice(["kpis", "heatmap", "matrix", "comparison"])
        self.request(
            "GET", f"/api/v1/alignment/dashboard/stores/{self._store()}/{panel}/", name="dashboard: API panel"
        )


class Employee(Person):
    """An employee in the rewards portal: balance and catalogue, then redeeming an item."""

    weight = 5

    def on_start(self):
        super().on_start()
        self.who = FIXTURES["employees"][next(_ips) % len(FIXTURES["employees"])]
        self.login(self.who)

    @task(2)
    def look(self):
        self.request("GET", "/rewards/", name="portal: home")

    @task(1)
    def redeem(self):
        page = self.request("GET", "/rewards/", name="portal: home").text
        forms = {int(pk): action for action, pk in REDEEM_FORM.findall(page)}
        items = [pk for pk in FIXTURES["catalog_items"] if pk in forms]
        if not items:
            return
        pk = self.rng.choice(items)
        token = next((i.get("value") for i in _inputs(page) if i.get("name") == "token"), uuid.uuid4().hex)
        self.request(
            "POST",
            forms[pk],
            name="portal: redeem",
            data={"token": token, "csrfmiddlewaretoken": self.jar.get("csrftoken", "")},
            headers=self._csrf_headers(),
            check=lambda r: None if "/rewards/redemptions/" in r.url else f"refused (back at {r.url})",
        )


@events.quitting.add_listener
def _report_client_cpu(environment, **_kw):
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    path = os.environ.get("LOAD_CLIENT_CPU")
    if path:
        with open(path, "w") as out:
            json.dump({"user": usage.ru_utime, "system": usage.ru_system}, out)
