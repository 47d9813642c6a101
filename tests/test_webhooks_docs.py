"""The README's reference verifier is cem.webhooks.verify, and it accepts and refuses what it should."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from django.conf import settings

from cem import webhooks

README = Path(settings.BASE_DIR) / "README.md"


def _snippet() -> str:
    text = README.read_text()
    section = text.split("### Webhooks (outgoing)", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    (code,) = [b for b in blocks if "def verify(" in b]
    return code


def test_readme_verifier_is_the_function_verbatim():
    code = _snippet()
    assert inspect.getsource(webhooks.verify) in code
    # Self-contained: standard library only.
    imports = {line for line in code.splitlines() if line.startswith(("import ", "from "))}
    assert imports == {"import hashlib", "import hmac", "import time"}


def test_readme_verifier_accepts_signed_deliveries_and_refuses_replays():
    namespace: dict = {}
    exec(compile(_snippet(), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    verify = namespace["verify"]
    secret = "whsec_readme"
    body = b'{"data":{"case_id":1},"id":7,"type":"CaseOpened"}'
    t = 1_767_261_600
    header = webhooks.signature_header([secret], t, body)
    assert verify(secret, header, body, now=t)
    assert verify(secret, header, body, now=t + 300)
    assert not verify(secret, header, body, now=t + 301)  # replay outside the 5-minute tolerance
    assert not verify(secret, header, body, now=t - 301)
    assert not verify(secret, header, body + b" ", now=t)
    assert not verify("whsec_other", header, body, now=t)
    # A header from the rotation overlap (two v1 values) verifies with either secret.
    both = webhooks.signature_header(["whsec_new", secret], t, body)
    assert verify(secret, both, body, now=t) and verify("whsec_new", both, body, now=t)


def test_readme_states_the_header_tolerance_and_schedule():
    section = README.read_text().split("### Webhooks (outgoing)", 1)[1].split("\n### ", 1)[0]
    assert "CEM-Signature: t=" in section and "v1=" in section
    assert "5 minutes" in section and "3 days" in section
    assert webhooks.TOLERANCE_SECONDS == 300 and webhooks.RETRY_WINDOW.days == 3
    for event_type in webhooks.WEBHOOK_EVENTS:
        assert f"`{event_type}`" in section


def test_readme_example_request_verifies_with_its_secret():
    section = README.read_text().split("### Webhooks (outgoing)", 1)[1].split("\n### ", 1)[0]
    example = section.split("```\n", 2)[1]
    header = re.search(r"^CEM-Signature: (\S+)$", example, flags=re.M).group(1)
    body = example.rstrip("\n").rsplit("\n", 1)[1].encode()
    t = int(re.search(r"t=(\d+)", header).group(1))
    assert webhooks.verify("whsec_example", header, body, now=t)
    assert not webhooks.verify("whsec_example", header, body, now=t + 301)
