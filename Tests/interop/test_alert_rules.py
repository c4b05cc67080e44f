"""deploy/prometheus/alerts.yaml checked by the real promtool (Debian's prometheus package, installed by
`make test-deps`): syntax, the unit tests in alerts_test.yaml, and that every alert carries what the
person it pages needs: a severity, a summary, a description and a runbook section in docs/operations.md."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from observability_support import (
    ALERTS,
    ALERTS_TEST,
    PROMETHEUS_EXAMPLE_CONFIG,
    alert_rules,
    debian_binary,
    github_anchor,
    runbook_anchors,
    runbook_fragment,
)

pytestmark = pytest.mark.timeout(60)

SEVERITIES = {"critical", "warning", "info"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [debian_binary("promtool"), *args], capture_output=True, text=True, timeout=50, cwd=ALERTS.parent
    )


def test_promtool_check_rules_accepts_alerts_yaml() -> None:
    res = promtool("check", "rules", str(ALERTS))
    assert res.returncode == 0, f"promtool check rules failed:\n{res.stdout}\n{res.stderr}"
    assert f"SUCCESS: {len(alert_rules())} rules found" in res.stdout, res.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    res = promtool("test", "rules", str(ALERTS_TEST))
    assert res.returncode == 0, f"promtool test rules failed:\n{res.stdout}\n{res.stderr}"
    assert "SUCCESS" in res.stdout, res.stdout


def test_example_prometheus_config_is_valid_and_loads_the_rules() -> None:
    res = promtool("check", "config", str(PROMETHEUS_EXAMPLE_CONFIG))
    assert res.returncode == 0, f"promtool check config failed:\n{res.stdout}\n{res.stderr}"
    config = yaml.safe_load(PROMETHEUS_EXAMPLE_CONFIG.read_text())
    assert config["rule_files"] == ["alerts.yaml"]
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    # alerts.yaml's MCPGatewayDown selects up{job="mcp-gateway"}.
    assert "mcp-gateway" in jobs


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    doc = yaml.safe_load(ALERTS_TEST.read_text())
    firing: set[str] = set()
    silent: set[str] = set()
    for case in doc["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), f"alerts without a firing case: {sorted(names - firing)}"
    assert names - silent == set(), f"alerts without a non-firing case: {sorted(names - silent)}"
    assert (firing | silent) - names == set(), f"tests for alerts that do not exist: {sorted((firing | silent) - names)}"


def test_every_alert_has_severity_summary_description_and_a_runbook_section() -> None:
    anchors = runbook_anchors()
    problems = []
    for rule in alert_rules():
        name = rule["alert"]
        severity = rule.get("labels", {}).get("severity")
        if severity not in SEVERITIES:
            problems.append(f"{name}: severity {severity!r} is not one of {sorted(SEVERITIES)}")
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not str(annotations.get(key, "")).strip():
                problems.append(f"{name}: no {key} annotation")
        url = annotations.get("runbook_url", "")
        path, fragment = runbook_fragment(url)
        if not path.endswith("docs/operations.md"):
            problems.append(f"{name}: runbook_url {url!r} does not point into docs/operations.md")
        if fragment != github_anchor(name):
            problems.append(f"{name}: runbook_url fragment {fragment!r} is not the alert's own heading {github_anchor(name)!r}")
        if fragment not in anchors:
            problems.append(f"{name}: docs/operations.md has no '### {name}' under '## Alert runbook' (anchor #{fragment})")
    assert not problems, "\n".join(problems)


def test_runbook_sections_all_belong_to_alerts() -> None:
    names = {github_anchor(rule["alert"]) for rule in alert_rules()}
    orphans = {heading for anchor, heading in runbook_anchors().items() if anchor not in names}
    assert not orphans, f"runbook sections for alerts that alerts.yaml does not define: {sorted(orphans)}"
