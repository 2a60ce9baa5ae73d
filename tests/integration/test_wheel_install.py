"""Installed as users install it: the wheel, in a fresh virtual environment, without the test extra.

The commands run from a directory outside the checkout, so sql/, schemas/ and templates/ can only
come from the install (`share/mimamori` under the environment, see pipeline/resources.py). Packages
come through pip as for any user (its cache makes a second run cheap). Costs about 1-3 minutes,
most of it unpacking the dependencies (chdb is large); nothing is compiled to bytecode.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.support.services import ROOT

pytestmark = pytest.mark.integration

# What the Dockerfile copies into the image: the wheel is built from exactly these.
SOURCES = ("pyproject.toml", "README.md", "pipeline", "agents", "gateway", "mimamori", "sql", "schemas", "templates")


def _run(*args: str | Path, cwd: Path, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    clean = {key: value for key, value in os.environ.items()
             if not key.startswith(("MIMAMORI_", "PYTHON", "VIRTUAL_ENV", "PIP_TARGET", "PIP_PREFIX"))}
    built = _run(*pip, "wheel", "--no-deps", "-w", base / "dist", source, cwd=base, env=clean)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (base / "dist").glob("mimamori-*.whl")
    venv = base / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=base, env=clean)
    assert made.returncode == 0, made.stderr
    done = _run(*pip, "--python", venv / "bin" / "python", "install", "--no-compile", wheel, cwd=base, env=clean)
    assert done.returncode == 0, done.stdout + done.stderr
    work = base / "elsewhere"  # outside the checkout; nothing of it is reachable from here
    work.mkdir()
    env = {**clean, "PATH": f"{venv / 'bin'}{os.pathsep}{clean.get('PATH', '')}", "HOME": str(work)}
    return work, env


def test_the_install_has_no_test_only_package_and_finds_its_files(installed: tuple[Path, dict[str, str]]) -> None:
    work, env = installed
    probe = ("import importlib.util, json, sys, pipeline.resources as r\n"
             "print(json.dumps({'root': str(r.ROOT), 'prefix': sys.prefix, 'package': r.__file__,"
             " 'sql': (r.SQL / 'migrations').is_dir(), 'schemas': (r.SCHEMAS / 'registry-file.json').is_file(),"
             " 'templates': (r.TEMPLATES / 'ja').is_dir(), 'rules': r.DEFAULT_RULES.is_file(),"
             " 'test_only': [m for m in ('jsonschema', 'pytest', 'hypothesis', 'aiosmtpd')"
             " if importlib.util.find_spec(m)]}))")
    done = _run("python", "-c", probe, cwd=work, env=env)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["root"] == str(Path(found["prefix"]) / "share" / "mimamori")
    assert not found["package"].startswith(str(ROOT))
    assert found["sql"] and found["schemas"] and found["templates"] and found["rules"], found
    # Were jsonschema brought in by a runtime dependency, this test could not catch its import.
    assert found["test_only"] == []


def test_replay_migrate_and_query_from_elsewhere(installed: tuple[Path, dict[str, str]]) -> None:
    work, env = installed
    sim = _run("mimamori", "simulate", "--out", "sim", "--duration", "10m", cwd=work, env=env)
    assert sim.returncode == 0, sim.stderr
    store = f"chdb://{work / 'store'}"
    migrated = _run("mimamori", "migrate", "--store", store, cwd=work, env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert "0001_tables.sql" in migrated.stdout + migrated.stderr
    replay = _run("mimamori", "replay", "sim/events.jsonl", "--registry", "sim/registry.json", "--store", store,
                  cwd=work, env=env)
    assert replay.returncode == 0, replay.stderr
    lines = [json.loads(line) for line in replay.stdout.splitlines()]
    kinds = Counter(line["record"] for line in lines)
    assert kinds["alert"] > 0 and kinds["mail"] > 0 and kinds["rejection"] > 0, kinds  # mails need templates/
    query = _run("mimamori", "query", "portal_alerts", "--store", store, "--format", "json", cwd=work, env=env)
    assert query.returncode == 0, query.stderr
    rows = [json.loads(line) for line in query.stdout.splitlines()]
    assert rows and {row["alert_id"] for row in rows} == {line["alert_id"] for line in lines if line["record"] == "alert"}


def test_registry_load_checks_files_without_jsonschema(installed: tuple[Path, dict[str, str]]) -> None:
    work, env = installed
    helped = _run("mimamori", "registry", "load", "--help", cwd=work, env=env)
    assert helped.returncode == 0 and "usage: mimamori registry load" in helped.stdout, helped.stderr
    (work / "bad.json").write_text('{"tenants": [{"tenant_id": "t", "name": "n", "notify_emails": [],'
                                   ' "service_start": "2026-02-30"}], "utms": [{"utm_id": "u"}]}')
    refused = _run("mimamori", "registry", "load", "--check", "bad.json", cwd=work, env=env)
    assert refused.returncode == 1, refused.stderr
    assert "Traceback" not in refused.stderr
    assert "tenants[0].notify_emails:" in refused.stderr
    assert 'tenants[0].service_start: "2026-02-30" must be date' in refused.stderr
    assert "utms[0]: must contain ['tenant_id'] properties" in refused.stderr
