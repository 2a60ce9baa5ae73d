"""`replay`, `produce` and `simulate` show progress on stderr when it is a terminal (a pty here),
and write nothing of it into a pipe."""
from __future__ import annotations

import os
import re
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import ROOT


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    done = subprocess.run([sys.executable, "-m", "mimamori.cli", "simulate", "--out", str(out), "--duration", "10m"],
                          cwd=ROOT, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


def commands(sim: Path, out: Path) -> dict[str, list[str]]:
    return {
        "replay": ["replay", str(sim / "events.jsonl"), "--registry", str(sim / "registry.json")],
        "produce": ["produce", "--check", str(sim / "events.jsonl")],
        "simulate": ["simulate", "--out", str(out), "--duration", "10m"],
    }


def run_with_stderr_on_a_terminal(args: list[str]) -> tuple[int, str]:
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "mimamori.cli", *args], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return proc.wait(timeout=120), seen.decode(errors="replace")


@pytest.mark.parametrize("name", ["replay", "produce", "simulate"])
def test_a_terminal_sees_count_rate_and_share(name: str, simulated: Path, tmp_path: Path) -> None:
    lines = sum(1 for _ in open(simulated / "events.jsonl", "rb"))
    code, stderr = run_with_stderr_on_a_terminal(commands(simulated, tmp_path / "again")[name])
    assert code in (0, 1), stderr  # produce --check exits 1: the simulation has lines to refuse
    last = [seg for seg in re.split(r"\r\n|\r", stderr) if "/s" in seg][-1]  # a pty writes \n as \r\n
    assert f"{lines:,} lines" in last and "/s, 100%" in last, stderr[-500:]
    assert "\x1b[K" in last


@pytest.mark.parametrize("name", ["replay", "produce", "simulate"])
def test_a_pipe_gets_no_progress(name: str, simulated: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mimamori.cli", *commands(simulated, tmp_path / "again")[name]],
                          cwd=ROOT, capture_output=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    assert b"\r" not in done.stderr and b"/s," not in done.stderr and b"\x1b[K" not in done.stderr
