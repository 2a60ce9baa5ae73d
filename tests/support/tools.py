"""The Go-built checkers the chart's tests run: `helm` and `promtool` (scripts/tools.sh builds them).

Required, never skipped: a test that needs one and cannot find it fails and says how to get it
(`make test` builds both before the tests run)."""
from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@cache
def _go_bin() -> Path | None:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None)
    if go is None:
        return None
    found = subprocess.run([go, "env", "GOBIN", "GOPATH"], capture_output=True, text=True, timeout=60)
    gobin, gopath = (found.stdout.splitlines() + ["", ""])[:2]
    return Path(gobin) if gobin else Path(gopath.split(os.pathsep)[0]) / "bin" if gopath else None


def tool(name: str) -> str:
    """The path of `name` in the Go bin directory (where scripts/tools.sh puts it), else on PATH."""
    gobin = _go_bin()
    if gobin is not None and (gobin / name).is_file():
        return str(gobin / name)
    on_path = shutil.which(name)
    if on_path:
        return on_path
    pytest.fail(f"`{name}` is missing: run scripts/tools.sh (make test does) to build it from its Go module",
                pytrace=False)


def run(name: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([tool(name), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check:
        assert result.returncode == 0, f"{name} {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result
