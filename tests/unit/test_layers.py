"""The layers of pyproject.toml's [tool.importlinter], checked by `lint-imports` as CI runs it.

mimamori (shell) above agents, gateway and portal (siblings that import none of each other) above pipeline;
inside the worker, the processors above the runtime; inside pipeline, the pure core imports neither its
adapters (pipeline.io) nor any outside service's client library; and within each package no modules
or folders that import each other in a circle.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("mimamori", "agents", "gateway", "portal", "pipeline")
CONTRACTS = {
    "layers": "mimamori (shell) above agents, gateway and portal (independent of each other) above pipeline",
    "worker-layers": "in the worker: the wiring above the processors (the application) above the runtime (the framework)",
    "core-io": "pipeline's pure core imports neither pipeline.io (its adapters) nor any outside service's client library",
    "acyclic": "no circle among the modules and folders of each package, at any depth",
    "no-test-only-packages": "the runtime imports no package that only the test extra installs",
}


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    # The tree under `root` comes first on the path, ahead of the editable install of this checkout.
    env = {**os.environ, "PYTHONPATH": str(root), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([str(LINT), "--no-cache", "--config", str(root / "pyproject.toml")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_checkout_keeps_every_contract() -> None:
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in CONTRACTS.values():
        assert f"{name} KEPT" in done.stdout


def _copy(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _add_import(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_an_upward_import_fails_the_layers(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _add_import(root / "pipeline" / "models.py", "import agents.context  # wrong: the core reaches up")
    _add_import(root / "agents" / "runtime" / "shell.py", "import mimamori.cli  # wrong: agents reach the shell")
    done = lint(root)
    assert done.returncode != 0
    assert f"{CONTRACTS['layers']} BROKEN" in done.stdout
    assert "pipeline.models -> agents.context" in done.stdout
    assert "agents.runtime.shell -> mimamori.cli" in done.stdout
    assert f"{CONTRACTS['core-io']} KEPT" in done.stdout


def test_the_runtime_importing_a_processor_fails(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _add_import(root / "agents" / "runtime" / "processor.py", "import agents.processors.detect  # wrong: the framework reaches the application")
    _add_import(root / "agents" / "processors" / "verdicts.py", "import agents.worker  # wrong: a processor reaches the wiring")
    done = lint(root)
    assert done.returncode != 0
    assert f"{CONTRACTS['worker-layers']} BROKEN" in done.stdout
    assert "agents.runtime.processor -> agents.processors.detect" in done.stdout
    assert "agents.processors.verdicts -> agents.worker" in done.stdout
    assert f"{CONTRACTS['layers']} KEPT" in done.stdout


def test_the_gateway_and_the_worker_import_neither_each_other_nor_the_shell(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _add_import(root / "gateway" / "checks.py", "import agents.context  # wrong: siblings")
    _add_import(root / "gateway" / "body.py", "import mimamori.cli  # wrong: the gateway reaches the shell")
    done = lint(root)
    assert done.returncode != 0
    assert f"{CONTRACTS['layers']} BROKEN" in done.stdout
    assert "gateway.checks -> agents.context" in done.stdout
    assert "gateway.body -> mimamori.cli" in done.stdout


def test_the_core_importing_an_adapter_fails(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _add_import(root / "pipeline" / "dedup.py", "from pipeline.io.store import backends  # wrong")
    _add_import(root / "pipeline" / "correlate.py", "import smtplib  # wrong")
    done = lint(root)
    assert done.returncode != 0
    assert f"{CONTRACTS['core-io']} BROKEN" in done.stdout
    assert "pipeline.dedup -> pipeline.io.store" in done.stdout
    assert "pipeline.correlate -> smtplib" in done.stdout
    assert f"{CONTRACTS['layers']} KEPT" in done.stdout



def test_a_circle_inside_a_package_fails(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _add_import(root / "pipeline" / "rows.py", "import pipeline.engine  # wrong: the engine imports rows")
    done = lint(root)
    assert done.returncode != 0
    assert f"{CONTRACTS['acyclic']} BROKEN" in done.stdout
    assert "No cycles are allowed in pipeline." in done.stdout
    assert f"{CONTRACTS['layers']} KEPT" in done.stdout

def test_a_runtime_import_of_a_test_only_package_fails(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _add_import(root / "mimamori" / "commands" / "registry.py", "import jsonschema  # wrong: test extra only")
    done = lint(root)
    assert done.returncode != 0
    assert f"{CONTRACTS['no-test-only-packages']} BROKEN" in done.stdout
    assert "mimamori.commands.registry -> jsonschema" in done.stdout


def test_importing_the_engine_loads_no_outside_service_client() -> None:
    """The engine and the mail package are the pure core: no smtplib, Kafka, ClickHouse or Faust."""
    clients = ["smtplib", "kafka", "aiokafka", "faust", "chdb", "clickhouse_driver", "prometheus_client"]

    def loaded(modules: str) -> str:
        code = f"import sys, {modules}\nprint(sorted(m for m in {clients!r} if m in sys.modules))"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert loaded("pipeline.engine, pipeline.mail") == "[]"
    assert loaded("pipeline.io.smtp") == "['smtplib']"  # the check sees a client when one is loaded
