"""The worker's process tuning (agents/runtime/memory.py), each in a fresh interpreter: it changes
process-wide settings the test process must keep."""
from __future__ import annotations

import subprocess
import sys

from tests.support.services import ROOT


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True,
                          timeout=60).stdout.strip()


def test_collect_less_freezes_what_was_built_and_raises_the_thresholds() -> None:
    out = run_python("import gc; from agents.runtime.memory import collect_less, GC_THRESHOLDS\n"
                     "before = gc.get_freeze_count(); collect_less()\n"
                     "print(gc.get_threshold() == GC_THRESHOLDS, gc.get_freeze_count() > before)")
    assert out == "True True"


def test_large_blocks_are_mapped_where_the_c_library_is_glibc() -> None:
    out = run_python("import platform; from agents.runtime.memory import large_blocks_mapped\n"
                     "print(large_blocks_mapped(), platform.libc_ver()[0])")
    mapped, libc = out.split()
    assert mapped == ("True" if libc == "glibc" else "False")
