"""`conveyor alerts -o DIR`: Prometheus alerting rules and a Grafana dashboard for a project.

Both read only what the server's `/metrics` exports (the service's counters and histograms, and
the gauges of the last monitor run, `_gauges.GAUGES`), so they work with any Prometheus that
scrapes the server. The rules file is checked by `promtool check rules` in the tests; the
dashboard follows Grafana's dashboard JSON model (schemaVersion 39: `panels` with `gridPos`,
`targets` with `expr` and `refId`, a `datasource` variable).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conveyor.core.config import Config
from conveyor.core.report import write_text

__all__ = ["dashboard", "prometheus_rules", "write_alerts"]

_PREDICT = 'path=~".*predict"'


def _rule(name: str, expr: str, severity: str, summary: str, description: str, for_: str = "0m") -> dict[str, Any]:
    return {"alert": name, "expr": expr, "for": for_, "labels": {"severity": severity},
            "annotations": {"summary": summary, "description": description}}


def prometheus_rules(config: Config) -> dict[str, Any]:
    """Alerting rules on the project's models (the `model` label of the monitor gauges)."""
    names = [config.name] if not config.models else [config.for_model(m).name for m in config.models]
    model = "|".join(names)
    sel = f'model=~"{model}"'
    drop = config.monitoring.performance_drop
    rules = [
        _rule("ConveyorDrift", f"max by (model, version) (conveyor_drift_detected{{{sel}}}) == 1", "warning",
              "{{ $labels.model }} v{{ $labels.version }}: served traffic drifted from the training data",
              "The last `conveyor monitor` found dataset drift; see reports/drift.html. "
              f"Policy: monitoring.on_drift = {config.monitoring.on_drift}."),
        _rule("ConveyorFeatureDrift", f"conveyor_feature_drifted{{{sel}}} == 1", "info",
              "{{ $labels.model }}: feature {{ $labels.feature }} drifted",
              "PSI and effect size: conveyor_feature_drift_psi and conveyor_feature_drift_effect."),
        _rule("ConveyorPerformanceDegraded", f"max by (model, version) (conveyor_performance_degraded{{{sel}}}) == 1",
              "critical", "{{ $labels.model }} v{{ $labels.version }}: labeled predictions score degraded",
              f"The primary metric on labeled traffic is worse than the test score by more than {drop:.0%} of it. "
              f"Policy: monitoring.on_degraded = {config.monitoring.on_degraded}."),
        _rule("ConveyorMonitorStale", f"time() - max by (model) (conveyor_monitor_last_run_timestamp_seconds{{{sel}}}) "
              "> 2 * 86400", "warning", "{{ $labels.model }}: no monitor run for 2 days",
              "Schedule `conveyor monitor --act` (cron, Airflow): drift is only seen when monitor runs."),
        _rule("ConveyorErrorRate", 'sum by (job) (rate(conveyor_requests_total{status=~"5.."}[5m])) / '
              "sum by (job) (rate(conveyor_requests_total[5m])) > 0.05", "critical",
              "{{ $labels.job }}: more than 5% of requests fail", "5xx answers over the last 5 minutes.", "5m"),
        _rule("ConveyorLatencyHigh", "histogram_quantile(0.99, sum by (job, le) "
              f"(rate(conveyor_request_latency_seconds_bucket{{{_PREDICT}}}[5m]))) > 0.5", "warning",
              "{{ $labels.job }}: p99 prediction latency above 500 ms", "The 99th percentile of /predict latency over 5 minutes.",
              "10m"),
        _rule("ConveyorReloadFailed", "increase(conveyor_model_reload_failures_total[15m]) > 0", "warning",
              "{{ $labels.job }}: a hot swap to the new @champion failed",
              "The old model kept serving; see the server log."),
    ]
    return {"groups": [{"name": f"conveyor-{config.name}", "rules": rules}]}


def _panel(pid: int, title: str, kind: str, exprs: list[tuple[str, str]], x: int, y: int, w: int = 12, h: int = 8,
           unit: str | None = None) -> dict[str, Any]:
    panel: dict[str, Any] = {
        "id": pid, "type": kind, "title": title,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend,
                     "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                    for i, (expr, legend) in enumerate(exprs)],
        "fieldConfig": {"defaults": {"unit": unit} if unit else {}, "overrides": []},
        "options": {},
    }
    return panel


def dashboard(config: Config) -> dict[str, Any]:
    """A Grafana dashboard: traffic, latency, batching, predictions, drift, performance."""
    m = 'model=~"$model"'
    panels = [
        _panel(1, "Request rate by status", "timeseries",
               [("sum by (status) (rate(conveyor_requests_total[5m]))", "{{status}}")], 0, 0, unit="reqps"),
        _panel(2, "Prediction latency quantiles", "timeseries",
               [(f"histogram_quantile({q}, sum by (le) (rate(conveyor_request_latency_seconds_bucket{{{_PREDICT}}}[5m])))",
                 f"p{int(q * 100)}") for q in (0.5, 0.9, 0.99)], 12, 0, unit="s"),
        _panel(3, "Micro-batch size", "timeseries",
               [(f"histogram_quantile({q}, sum by (le) (rate(conveyor_batch_rows_bucket[5m])))", f"p{int(q * 100)}")
                for q in (0.5, 0.99)], 0, 8),
        _panel(4, "Prediction distribution", "heatmap",
               [("sum by (le) (rate(conveyor_prediction_value_bucket[5m]))", "{{le}}")], 12, 8),
        _panel(5, "Dataset drift (last monitor run)", "stat",
               [(f"max by (model) (conveyor_drift_detected{{{m}}})", "{{model}}")], 0, 16, w=6),
        _panel(6, "Share of features drifted", "stat",
               [(f"max by (model) (conveyor_drift_share{{{m}}})", "{{model}}")], 6, 16, w=6, unit="percentunit"),
        _panel(7, "Feature drift: effect size", "bargauge",
               [(f"max by (feature) (conveyor_feature_drift_effect{{{m}}})", "{{feature}}")], 12, 16),
        _panel(8, "Feature drift: PSI", "bargauge",
               [(f"max by (feature) (conveyor_feature_drift_psi{{{m}}})", "{{feature}}")], 0, 24),
        _panel(9, "Missing share in traffic", "bargauge",
               [(f"max by (feature) (conveyor_feature_missing_share{{{m}}})", "{{feature}}")], 12, 24,
               unit="percentunit"),
        _panel(10, "Performance on labeled predictions vs test", "timeseries",
               [(f"max by (model, metric) (conveyor_performance{{{m}}})", "{{model}} {{metric}} (labeled)"),
                (f"max by (model, metric) (conveyor_performance_test{{{m}}})", "{{model}} {{metric}} (test)")], 0, 32),
        _panel(11, "Performance degraded", "stat",
               [(f"max by (model) (conveyor_performance_degraded{{{m}}})", "{{model}}")], 12, 32, w=6),
        _panel(12, "Model version served", "table",
               [("max by (name, version) (conveyor_model_info)", "{{name}} v{{version}}")], 18, 32, w=6),
    ]
    return {
        "uid": f"conveyor-{config.name}"[:40],
        "title": f"Conveyor: {config.name}",
        "tags": ["conveyor", "mlops"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-24h", "to": "now"},
        "timepicker": {},
        "annotations": {"list": []},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus",
             "current": {}, "hide": 0},
            {"name": "model", "type": "query", "label": "Model",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"query": "label_values(conveyor_monitor_predictions, model)", "refId": "models"},
             "definition": "label_values(conveyor_monitor_predictions, model)", "refresh": 2,
             "includeAll": True, "allValue": ".*", "multi": True, "current": {}, "hide": 0},
        ]},
        "panels": panels,
    }


def write_alerts(config: Config, folder: Path) -> tuple[Path, Path]:
    """`prometheus-rules.yml` and `grafana-dashboard.json` in `folder`."""
    import yaml

    rules = write_text(folder / "prometheus-rules.yml",
                       "# Prometheus alerting rules written by `conveyor alerts`; load with rule_files:.\n"
                       + yaml.safe_dump(prometheus_rules(config), sort_keys=False, width=200))
    board = write_text(folder / "grafana-dashboard.json", json.dumps(dashboard(config), indent=2) + "\n")
    return rules, board
