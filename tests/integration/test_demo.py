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
    _open_the_portal_as_the_demo_says(done.stdout, tmp_path)


def _open_the_portal_as_the_demo_says(stdout: str, tmp_path: Path) -> None:
    """The demo's last words: the portal command and a demo account. Both work on its store."""
    import http.cookiejar
    import re
    import time
    import urllib.parse
    import urllib.request

    from tests.support.services import free_port

    found = re.search(r"MIMAMORI_PORTAL_KEY=\$\(cat (\S+)\) mimamori portal --store (\S+) --port \d+ --insecure-cookies\n"
                      r"\s+then http://localhost:\d+/ with user id (\S+) and password (\S+)", stdout)
    assert found, stdout[-2000:]
    key_file, store, user, password = found.groups()
    port = free_port()
    env = {**os.environ, "MIMAMORI_PORTAL_KEY": Path(key_file).read_text().strip()}
    portal = subprocess.Popen([sys.executable, "-m", "mimamori.cli", "portal", "--store", store, "--port", str(port),
                               "--host", "127.0.0.1", "--insecure-cookies"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/health", timeout=2).read()
                break
            except OSError:
                assert portal.poll() is None, portal.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the portal did not answer within 60 s"
                time.sleep(0.2)
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = opener.open(base + "/login").read().decode()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        summary = opener.open(base + "/login", urllib.parse.urlencode(
            {"csrf": csrf, "user": user, "password": password}).encode())
        assert summary.geturl() == base + "/"
        assert "自社のセキュリティ状態" in summary.read().decode()
    finally:
        portal.terminate()
        portal.wait(20)
