"""The Prometheus alert rules and the Grafana dashboard of docs/: promtool
checks the rules and runs their unit tests (each alert fires and does not
fire on synthetic series), and every metric the rules and the dashboard
query is one the metrics command exports, as read from its rendering."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from plugins.module_utils import _counters
from tests.unit.test_metrics import full_reading

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "docs" / "prometheus" / "vos-fastpath-alerts.yml"
RULE_TESTS = REPO / "tests" / "prometheus" / "vos-fastpath-alerts.test.yml"
DASHBOARD = REPO / "docs" / "grafana" / "vos-fastpath.json"
METRIC = re.compile(r"\bvos_fastpath_[a-z0-9_]+")


def exported() -> set[str]:
    """The metric names of a rendering with every part present."""
    text = _counters.metrics_text(full_reading())
    return set(re.findall(r"^# TYPE (\S+) ", text, re.M))


def promtool(*args: str, cwd: Path | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True,
                          text=True, check=False)


def alerts() -> dict[str, str]:
    """{alert name: expression} of the rules file."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups
            for rule in group["rules"]}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panel_queries() -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"])
            for panel in dashboard()["panels"]
            for target in panel.get("targets", [])]


def test_promtool_checks_the_rules() -> None:
    proc = promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: %d rules found" % len(alerts()) in proc.stdout


def test_each_alert_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    proc = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    # Every alert is tested both ways.
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
             for case in test["alert_rule_test"]]
    fired = {c["alertname"] for c in cases if c["exp_alerts"]}
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
    assert fired == quiet == set(alerts())


def test_the_alert_names_the_brief_asks_for_are_there() -> None:
    assert set(alerts()) == {
        "VosFastpathDetached", "VosFastpathMetricsStale",
        "VosFastpathMalformedJump", "VosFastpathRateLimitedJump",
        "VosFastpathBansNearCapacity", "VosFastpathListNearCapacity"}


def test_the_rules_query_only_exported_metrics() -> None:
    names = exported()
    for alert, expr in alerts().items():
        used = set(METRIC.findall(expr))
        assert used, alert
        assert used <= names, (alert, used - names)


def test_the_dashboard_queries_only_exported_metrics() -> None:
    names = exported()
    used_anywhere: set[str] = set()
    for title, expr in panel_queries():
        used = set(METRIC.findall(expr))
        assert used, title
        assert used <= names, (title, used - names)
        used_anywhere |= used
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            assert set(METRIC.findall(variable["definition"])) <= names
    # What the dashboard is for: verdicts, drops by class and signature,
    # bans, list sizes, attachment.
    assert {"vos_fastpath_packets_total",
            "vos_fastpath_rate_limited_packets_total",
            "vos_fastpath_scanner_packets_total",
            "vos_fastpath_bans_in_force", "vos_fastpath_list_entries",
            "vos_fastpath_list_keys", "vos_fastpath_attached",
            "vos_fastpath_metrics_last_run_timestamp_seconds"} <= \
        used_anywhere


def test_the_dashboard_queries_are_promql(tmp_path: Path) -> None:
    """promtool parses each query as a recording rule's expression, with
    Grafana's variables given values."""
    rules = [{"record": "dashboard:query_%d" % i,
              "expr": expr.replace("$__rate_interval", "5m")
              .replace("$instance", ".*")}
             for i, (_title, expr) in enumerate(panel_queries())]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard",
                                                "rules": rules}]}))
    proc = promtool("check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_dashboard_panels_are_unique_and_use_its_datasource() -> None:
    panels = dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert len({p["title"] for p in panels}) == len(panels)
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"], panel["title"]
