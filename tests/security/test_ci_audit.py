"""scripts/audit_dependencies.py (the .ci/run pip-audit step): a finding fails, an unreachable
vulnerability service is reported as NOT AUDITED and is not mistaken for a clean audit."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "audit_dependencies.py"


@pytest.fixture(scope="module")
def audit():
    spec = importlib.util.spec_from_file_location("audit_dependencies", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _report(*deps) -> str:
    return json.dumps({"dependencies": list(deps), "fixes": []})


CLEAN = [{"name": f"pkg{i}", "version": "1.0", "vulns": []} for i in range(10)]
VULN = {
    "name": "django",
    "version": "5.2.0",
    "vulns": [{"id": "PYSEC-2025-1", "fix_versions": ["5.2.1"], "aliases": []}],
}


def _skipped(name):
    return {"name": name, "skip_reason": f"Dependency not found on PyPI and could not be audited: {name}"}


def test_a_vulnerability_is_a_finding(audit):
    verdict = audit.classify(_report(*CLEAN, VULN))
    assert verdict.outcome == "findings"
    assert verdict.findings == ["django 5.2.0: PYSEC-2025-1 (fixed in 5.2.1)"]


def test_a_finding_wins_even_when_most_lookups_failed(audit):
    verdict = audit.classify(_report(VULN, *[_skipped(f"p{i}") for i in range(20)]))
    assert verdict.outcome == "findings"


def test_clean_report_is_audited(audit):
    verdict = audit.classify(_report(*CLEAN, _skipped("internal-only")))
    assert verdict.outcome == "audited" and verdict.audited == 10


@pytest.mark.parametrize(
    ("report", "stderr"),
    [
        (None, "requests.exceptions.ConnectionError: Failed to resolve 'api.osv.dev'"),
        ("", ""),
        ("{not json", ""),
        (json.dumps({"unexpected": []}), ""),
        # A mirror that 404s every per-version look-up: pip-audit itself exits 0 here.
        (_report(*[_skipped(f"p{i}") for i in range(30)]), ""),
        (_report(), ""),
    ],
)
def test_service_failures_are_not_audited(audit, report, stderr):
    assert audit.classify(report, stderr).outcome == "unavailable"


def test_exit_codes(audit, monkeypatch, capsys):
    def run_with(report, stderr=""):
        monkeypatch.setattr(audit, "run_pip_audit", lambda: (report, stderr))
        return audit.main()

    monkeypatch.delenv("PIP_AUDIT_REQUIRED", raising=False)
    assert run_with(_report(*CLEAN, VULN)) == 1
    assert "PYSEC-2025-1" in capsys.readouterr().out
    assert run_with(_report(*CLEAN)) == 0
    assert run_with(None, "ConnectionError") == 0
    assert "NOT AUDITED" in capsys.readouterr().out
    monkeypatch.setenv("PIP_AUDIT_REQUIRED", "1")
    assert run_with(None, "ConnectionError") == 2
    assert run_with(_report(*CLEAN, VULN)) == 1
