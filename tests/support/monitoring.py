"""The metric names the chart's dashboard and alert rules read, and the names a /metrics page serves."""
from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support import tools

CHART = Path(__file__).resolve().parents[2] / "helm" / "mimamori"
# a metric name in PromQL: mimamori_..., not a recording rule (mimamori:...) nor a label value
_NAME = re.compile(r"(?<![\w:\"])(mimamori_[a-z0-9_]+)(?![\w:\"])")
_SERIES_SUFFIXES = ("_bucket", "_count", "_sum")


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v.get("type") == "query"]
    return exprs


def rule_exprs() -> list[str]:
    rendered = tools.run("helm", "template", "rel", str(CHART), "--kube-version", "1.30.0",
                         "--set", "monitoring.prometheusRule.enabled=true",
                         "--show-only", "templates/prometheusrule.yaml", timeout=60).stdout
    return [json.loads(e) if e.startswith('"') else e for e in re.findall(r"^\s+expr: (.+)$", rendered, re.M)]


def names_in(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in _NAME.findall(expr)}


def served_names(exposition: str) -> set[str]:
    """Every name a Prometheus exposition serves: its families (also those without samples yet)
    and its series, with a histogram's _bucket/_count/_sum."""
    names = set(re.findall(r"^# TYPE (\S+) ", exposition, re.M))
    names |= set(re.findall(r"^([a-zA-Z_:][\w:]*)(?:\{| )", exposition, re.M))
    for family, kind in re.findall(r"^# TYPE (\S+) (\w+)", exposition, re.M):
        if kind == "histogram":
            names |= {family + suffix for suffix in _SERIES_SUFFIXES}
    return names
