"""Known-vulnerability audit of the installed .venv with pip-audit, for .ci/run.

pip-audit exits 1 both when it finds a vulnerability and when it cannot reach the vulnerability
service (a traceback, no report), and it exits 0 when the service answers "not found" for
every package (nothing was audited at all). Those three must not look alike, so this script
reads pip-audit's JSON report and decides:

- FINDINGS (exit 1): at least one installed distribution has a known vulnerability. Always fatal.
- AUDITED (exit 0): the service answered for the dependencies and none is vulnerable.
- UNAVAILABLE: no report (network error, service down), or the service could not look up most
  dependencies (a mirror that does not serve the per-version JSON answers 404 for all of them).
  Exit 0 with a loud warning by default: the code did not change what a third-party service
  answers, and CI cannot tell "no known vulnerability" from "nobody asked". Set
  ``PIP_AUDIT_REQUIRED=1`` where the service must be reachable to make this fatal (exit 2).

Run as ``.venv/bin/python scripts/audit_dependencies.py``; pip-audit must be installed in that
interpreter's environment (it is in the dev extra), which is the environment it audits.
"""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404 # runs pip-audit from our own venv with a fixed argument list
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# More unanswered look-ups than this share of the dependencies means the service did not work.
UNAVAILABLE_SHARE = 0.5
TIMEOUT_SECONDS = 600


@dataclass
class Verdict:
    outcome: str  # "findings" | "audited" | "unavailable"
    findings: list[str] = field(default_factory=list)
    unaudited: list[str] = field(default_factory=list)
    audited: int = 0
    detail: str = ""


def classify(report_text: str | None, stderr: str = "") -> Verdict:
    """The verdict for one pip-audit run from its JSON report (None when none was written)."""
    if not report_text:
        last = stderr.strip().splitlines()[-1:] or ["pip-audit wrote no report"]
        return Verdict("unavailable", detail=last[0][:500])
    try:
        report = json.loads(report_text)
        dependencies = report["dependencies"]
    except (ValueError, KeyError, TypeError) as exc:
        return Verdict("unavailable", detail=f"unreadable pip-audit report: {exc}")
    findings, unaudited, audited = [], [], 0
    for dep in dependencies:
        name = f"{dep.get('name')} {dep.get('version', '')}".strip()
        vulns = dep.get("vulns") or []
        if vulns:
            for vuln in vulns:
                fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed release"
                findings.append(f"{name}: {vuln.get('id')} (fixed in {fixed})")
        if "skip_reason" in dep:
            unaudited.append(f"{name}: {dep['skip_reason']}")
        else:
            audited += 1
    if findings:
        return Verdict("findings", findings, unaudited, audited)
    total = audited + len(unaudited)
    if total == 0 or len(unaudited) > total * UNAVAILABLE_SHARE:
        detail = f"the service answered for {audited} of {total} dependencies"
        return Verdict("unavailable", [], unaudited, audited, detail)
    return Verdict("audited", [], unaudited, audited)


def run_pip_audit() -> tuple[str | None, str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pip-audit.json"
        command = [
            sys.executable,
            "-m",
            "pip_audit",
            "--local",  # this venv's distributions
            "--skip-editable",  # the project itself is not on PyPI
            "--progress-spinner",
            "off",
            "--timeout",
            "30",
            "--format",
            "json",
            "--output",
            str(out),
        ]
        proc = subprocess.run(  # noqa: S603  # nosec B603 # a fixed argv, no shell
            command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
        )
        report = out.read_text() if out.exists() else None
        return report, proc.stderr


def main() -> int:
    try:
        report, stderr = run_pip_audit()
    except subprocess.TimeoutExpired:
        report, stderr = None, f"pip-audit did not finish within {TIMEOUT_SECONDS} s"
    verdict = classify(report, stderr)
    if verdict.outcome == "findings":
        print(f"pip-audit: {len(verdict.findings)} known vulnerabilities:")
        for line in verdict.findings:
            print(f"  {line}")
        print("Upgrade the pin in pyproject.toml (dependencies or the dev extra) and reinstall.")
        return 1
    if verdict.outcome == "audited":
        print(f"pip-audit: no known vulnerabilities in {verdict.audited} installed distributions.")
        for line in verdict.unaudited:
            print(f"  not audited: {line}")
        return 0
    print("!" * 78)
    print("pip-audit: NOT AUDITED - the vulnerability service could not be used;")
    print(f"  {verdict.detail}")
    for line in verdict.unaudited[:5]:
        print(f"  e.g. {line}")
    print("This is not a finding. Set PIP_AUDIT_REQUIRED=1 to make it fail the run.")
    print("!" * 78)
    return 2 if os.environ.get("PIP_AUDIT_REQUIRED") == "1" else 0


if __name__ == "__main__":
    sys.exit(main())
