"""--metrics-file on plan, drift and apply: the file parses with prometheus-client's own parser
and has the documented series with the right values; docs/grafana-panel.json only queries
series pausectl writes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from helpers import EXAMPLE_STATE, make_state, run_cli

REPO = Path(__file__).resolve().parents[2]
DOCUMENTED = {"pausectl_paused_dags", "pausectl_drift_dags", "pausectl_pauses_past_until",
              "pausectl_apply_duration_seconds", "pausectl_gate_total", "pausectl_plan_changes"}


def samples(path: Path) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value, through prometheus_client's parser."""
    out = {}
    for fam in text_string_to_metric_families(path.read_text()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(data, name, **labels):
    return data[(name, tuple(sorted(labels.items())))]


def test_plan_drift_and_apply_write_the_documented_series(tmp_path):
    shutil.copytree(EXAMPLE_STATE, tmp_path / "state")
    env = {"PAUSECTL_JOURNAL_DIR": str(tmp_path / "journal")}
    out = run_cli(["plan", "prod", "--metrics-file", "m/plan.prom"], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    plan = samples(tmp_path / "m" / "plan.prom")
    assert value(plan, "pausectl_plan_changes", env="prod", action="pause") == 3
    assert value(plan, "pausectl_plan_changes", env="prod", action="unpause") == 2
    assert value(plan, "pausectl_drift_dags", env="prod") == 5
    assert value(plan, "pausectl_paused_dags", env="prod") == 4
    assert value(plan, "pausectl_pauses_past_until", env="prod") == 0
    assert value(plan, "pausectl_last_run_timestamp_seconds", env="prod", command="plan") > 1e9

    out = run_cli(["drift", "prod", "staging", "--metrics-file", "m/drift.prom"], cwd=tmp_path,
                  env=env)
    assert out.returncode == 0, out.stderr
    drift = samples(tmp_path / "m" / "drift.prom")
    assert value(drift, "pausectl_drift_dags", env="prod") == 5
    assert value(drift, "pausectl_drift_dags", env="staging") == 0
    assert value(drift, "pausectl_manual_drift_dags", env="prod") == 0

    out = run_cli(["apply", "prod", "--yes", "--batches", "1,100%", "--wait-seconds", "0",
                   "--metrics-file", "m/apply.prom"], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    apply = samples(tmp_path / "m" / "apply.prom")
    names = {n for n, _ in apply}
    assert DOCUMENTED <= names, DOCUMENTED - names
    assert value(apply, "pausectl_drift_dags", env="prod") == 0
    assert value(apply, "pausectl_paused_dags", env="prod") == 5          # 4 + 3 - 2
    assert value(apply, "pausectl_gate_total", env="prod", outcome="passed") >= 1
    assert value(apply, "pausectl_gate_total", env="prod", outcome="failed") == 0
    assert 0 <= value(apply, "pausectl_apply_duration_seconds", env="prod") < 60
    # the file is Prometheus text format exactly as prometheus-client writes it
    text = (tmp_path / "m" / "apply.prom").read_text()
    assert "# TYPE pausectl_gate_total counter" in text
    assert "# TYPE pausectl_paused_dags gauge" in text


PROD_EXPIRED = """\
environment: prod
dags:
  report_daily: {paused: true, reason: "old outage", owner: analytics,
                 until: 2020-01-01T00:00:00Z}
"""


def test_pauses_past_until_counts_a_forgotten_pause_until_apply_ends_it(tmp_path):
    make_state(tmp_path, {"prod.yaml": PROD_EXPIRED})
    env = {"PAUSECTL_JOURNAL_DIR": str(tmp_path / "journal")}
    out = run_cli(["plan", "prod", "--metrics-file", "p.prom"], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert value(samples(tmp_path / "p.prom"), "pausectl_pauses_past_until", env="prod") == 1
    out = run_cli(["apply", "prod", "--yes", "--metrics-file", "a.prom"], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    data = samples(tmp_path / "a.prom")
    assert value(data, "pausectl_pauses_past_until", env="prod") == 0
    assert value(data, "pausectl_plan_changes", env="prod", action="unpause") == 1


def test_an_unwritable_metrics_file_is_a_warning_not_a_failure(tmp_path):
    shutil.copytree(EXAMPLE_STATE, tmp_path / "state")
    (tmp_path / "blocker").write_text("a file, not a directory")
    out = run_cli(["plan", "prod", "--metrics-file", "blocker/m.prom"], cwd=tmp_path)
    assert out.returncode == 0
    assert "warning: " in out.stderr and "cannot write metrics" in out.stderr


def test_the_grafana_panel_queries_only_series_pausectl_writes():
    panel = json.loads((REPO / "docs" / "grafana-panel.json").read_text())
    exprs = []

    def walk(node):
        if isinstance(node, dict):
            if "expr" in node:
                exprs.append(node["expr"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(panel)
    assert exprs
    used = {m for e in exprs for m in re.findall(r"\bpausectl_[a-z_]+", e)}
    written = DOCUMENTED | {"pausectl_manual_drift_dags", "pausectl_last_run_timestamp_seconds"}
    assert used and used <= written, used - written
