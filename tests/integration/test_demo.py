"""The README's first command: `mimamori demo` runs to the end on the real broker."""
from __future__ import annotations

import os
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

from tests.support.services import ROOT, KafkaService


def test_demo_runs_the_whole_pipeline(kafka: KafkaService, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mimamori.cli", "demo", "--dir", str(tmp_path / "demo")],
        cwd=ROOT, env={**os.environ, "MIMAMORI_KAFKA": kafka.bootstrap}, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "== portal_alerts (5 rows) ==" in done.stdout
    # the Kafka clients' set-up chatter, retried by themselves, is not shown to the reader
    assert "Group Coordinator" not in done.stderr and "not found in cluster metadata" not in done.stderr, done.stderr
    mails = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in (tmp_path / "demo" / "mail" / "new").iterdir()]
    kinds = sorted(m["X-Mimamori-Kind"] for m in mails)
    assert "investigation-report" in kinds and "alert" in kinds
    assert any("★★★" in str(m["Subject"]) for m in mails)
    report = tmp_path / "demo" / "reports"
    assert f"(not sent): {report}" in done.stdout
    eml = next(report.glob("*.eml"))
    assert message_from_bytes(eml.read_bytes(), policy=policy.default)["X-Mimamori-Kind"] == "monthly-report"
    assert len(list(report.glob("*.png"))) == 2
