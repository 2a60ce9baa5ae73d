"""The grading policy as data: which events give a signal of which level (CONTRACT.md, policy table)."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pipeline.models import ACTIONS, DIRECTIONS, THREAT_TYPES, Event
from pipeline.resources import DEFAULT_RULES

UNKNOWN_CATEGORY = "@unknown"
CONTRACT_THREAT_CATEGORIES = ("malware", "ransomware", "spyware", "c2", "phishing", "exploit", "scan", "pua")
_RULE_KEYS = {
    "name", "level", "title", "category", "types", "threat_categories", "actions", "directions",
    "min_severity", "max_severity",
}
_POLICY_KEYS = {"known_threat_categories"}


class PolicyError(ValueError):
    """A rules file that cannot be used; the message names the file, the rule and the problem."""


@dataclass(frozen=True)
class Signal:
    level: int
    rule: str
    title: str
    category: str


@dataclass(frozen=True)
class Rule:
    name: str
    level: int
    title: str
    category: str | None = None
    types: frozenset[str] | None = None
    threat_categories: frozenset[str] | None = None
    actions: frozenset[str] | None = None
    directions: frozenset[str] | None = None
    min_severity: int | None = None
    max_severity: int | None = None

    def matches(self, event: Event, known_categories: frozenset[str]) -> bool:
        if self.types is not None and event.type not in self.types:
            return False
        if self.actions is not None and event.action not in self.actions:
            return False
        if self.directions is not None and event.direction not in self.directions:
            return False
        if self.threat_categories is not None:
            category = event.threat_category
            unknown = category is None or category not in known_categories
            if not (category in self.threat_categories or (unknown and UNKNOWN_CATEGORY in self.threat_categories)):
                return False
        severity = event.vendor_severity
        if self.min_severity is not None and (severity is None or severity < self.min_severity):
            return False
        if self.max_severity is not None and (severity is None or severity > self.max_severity):
            return False
        return True


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    known_threat_categories: frozenset[str]

    @cached_property
    def _precedence(self) -> dict[str, tuple[int, int]]:
        return {rule.name: (rule.level, -index) for index, rule in enumerate(self.rules)}

    def precedence(self, rule_name: str) -> tuple[int, int]:
        """Order of signals for an alert's rule and title: higher level, then earlier in the file."""
        return self._precedence.get(rule_name, (-1, 0))

    def signal(self, event: Event) -> Signal | None:
        if event.type not in THREAT_TYPES:
            return None
        best: Rule | None = None
        for rule in self.rules:
            if (best is None or rule.level > best.level) and rule.matches(event, self.known_threat_categories):
                best = rule
        if best is None:
            return None
        category = best.category or event.threat_category or "unknown"
        return Signal(level=best.level, rule=best.name, title=best.title, category=category)


def load_policy(path: Path | None = None) -> Policy:
    """Read and check a rules file (None: the packaged default); a broken one raises PolicyError."""
    path = DEFAULT_RULES if path is None else Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_policy(data)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None


def parse_policy(data: dict[str, Any]) -> Policy:
    unknown_top = set(data) - {"policy", "rule"}
    if unknown_top:
        raise PolicyError(f"unknown section(s) {', '.join(sorted(unknown_top))}")
    header = data.get("policy", {})
    if not isinstance(header, dict) or set(header) - _POLICY_KEYS:
        raise PolicyError(f"[policy]: unknown key(s) {', '.join(sorted(set(header) - _POLICY_KEYS))}")
    known = _strings(header.get("known_threat_categories", list(CONTRACT_THREAT_CATEGORIES)), "[policy]", "known_threat_categories")
    entries = data.get("rule")
    if not isinstance(entries, list) or not entries:
        raise PolicyError("no [[rule]] entries")
    rules: list[Rule] = []
    names: set[str] = set()
    for index, entry in enumerate(entries, start=1):
        rule = _parse_rule(entry, index)
        if rule.name in names:
            raise PolicyError(f"rule {rule.name!r}: name used twice")
        names.add(rule.name)
        rules.append(rule)
    return Policy(rules=tuple(rules), known_threat_categories=frozenset(known))


def _parse_rule(entry: Any, index: int) -> Rule:
    where = f"rule #{index}"
    if not isinstance(entry, dict):
        raise PolicyError(f"{where}: not a table")
    if isinstance(entry.get("name"), str) and entry["name"].strip():
        where = f"rule {entry['name']!r}"
    else:
        raise PolicyError(f"{where}: missing or empty 'name'")
    extra = set(entry) - _RULE_KEYS
    if extra:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
    level = entry.get("level")
    if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 3:
        raise PolicyError(f"{where}: bad level {level!r} (expected an integer 0-3)")
    title = entry.get("title")
    if not isinstance(title, str) or not title.strip():
        raise PolicyError(f"{where}: missing or empty 'title'")
    category = entry.get("category")
    if category is not None and (not isinstance(category, str) or not category):
        raise PolicyError(f"{where}: 'category' must be a non-empty string")
    return Rule(
        name=entry["name"], level=level, title=title, category=category,
        types=_choices(entry, "types", THREAT_TYPES, where),
        threat_categories=_optional_strings(entry, "threat_categories", where),
        actions=_choices(entry, "actions", ACTIONS, where),
        directions=_choices(entry, "directions", DIRECTIONS, where),
        min_severity=_severity(entry, "min_severity", where),
        max_severity=_severity(entry, "max_severity", where),
    )


def _strings(value: Any, where: str, key: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{where}: '{key}' must be a non-empty list of strings")
    return value


def _optional_strings(entry: dict[str, Any], key: str, where: str) -> frozenset[str] | None:
    if key not in entry:
        return None
    return frozenset(_strings(entry[key], where, key))


def _choices(entry: dict[str, Any], key: str, allowed: tuple[str, ...], where: str) -> frozenset[str] | None:
    values = _optional_strings(entry, key, where)
    if values is None:
        return None
    wrong = sorted(values - set(allowed))
    if wrong:
        raise PolicyError(f"{where}: unknown {key[:-1]} {', '.join(wrong)} (expected one of {', '.join(allowed)})")
    return values


def _severity(entry: dict[str, Any], key: str, where: str) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5:
        raise PolicyError(f"{where}: bad {key} {value!r} (expected an integer 1-5)")
    return value
