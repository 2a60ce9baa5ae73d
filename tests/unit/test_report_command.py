"""`mimamori report TENANT_ID --month YYYY-MM --out DIR`: one report to files, nothing sent."""
from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

import pytest

from mimamori.cli import main
from pipeline.report.render import report_message_id
from pipeline.io.store.backends import open_store
from tests.support.report_store import MONTH, build_report_store


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"chdb://{tmp_path_factory.mktemp('report-cmd')}"
    store = open_store(url)
    try:
        build_report_store(store)
    finally:
        store.close()
    return url


def test_report_renders_the_eml_html_text_and_pngs(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reports"
    assert main(["report", "ta", "--month", str(MONTH), "--out", str(out), "--store", url]) == 0
    stem = f"ta-{MONTH}"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{stem}.eml", f"{stem}.html", f"{stem}.txt", f"{stem}-detections.png", f"{stem}-availability.png"])
    printed = capsys.readouterr().out.split()
    assert printed[0] == str(out / f"{stem}.eml") and len(printed) == 5
    message = message_from_bytes((out / f"{stem}.eml").read_bytes(), policy=policy.default)
    assert message["Message-ID"] == report_message_id("ta", str(MONTH))
    assert message["X-Mimamori-Kind"] == "monthly-report"
    html = (out / f"{stem}.html").read_text(encoding="utf-8")
    assert f'src="{stem}-detections.png"' in html and f'src="{stem}-availability.png"' in html and "cid:" not in html
    assert "今月は★★★が2件、UTM停止が2回ありました。" in (out / f"{stem}.txt").read_text(encoding="utf-8")
    assert (out / f"{stem}-detections.png").read_bytes().startswith(b"\x89PNG")


def test_report_refuses_a_bad_month_an_unknown_tenant_and_a_month_out_of_service(
        url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "ta", "--month", "2026-13", "--store", url]) == 2
    assert main(["report", "ta", "--store", url]) == 2
    assert main(["report", "nobody", "--month", str(MONTH), "--out", str(tmp_path), "--store", url]) == 1
    assert "no tenant 'nobody'" in capsys.readouterr().err
    assert main(["report", "tc", "--month", str(MONTH.previous()), "--out", str(tmp_path), "--store", url]) == 1
    assert "not in service" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


CRAFTED = "X-Mimamori-Month: 1999-01\r\n../../evil.example/t"


def test_report_is_robust_to_any_tenant_id(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The month is the one asked for, not read back from rendered text; files stay in --out."""
    from datetime import date, datetime, timezone

    from pipeline.models import Tenant
    from pipeline.rows import tenant_row

    store = open_store(url)
    try:
        store.insert("tenants", [tenant_row(Tenant(CRAFTED, "Crafted", ("a@crafted.example",),
                                                   service_start=date(2024, 1, 1)), datetime.now(timezone.utc))])
    finally:
        store.close()
    out = tmp_path / "reports"
    assert main(["report", CRAFTED, "--month", str(MONTH), "--out", str(out), "--store", url]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 5 and all(f"-{MONTH}." in n or f"-{MONTH}-" in n for n in names), names
    assert [p for p in tmp_path.rglob("*") if p.is_file() and out not in p.parents] == []
    eml = next(p for p in out.iterdir() if p.suffix == ".eml")
    assert message_from_bytes(eml.read_bytes(), policy=policy.default)["X-Mimamori-Month"] == str(MONTH)


def test_report_out_an_existing_file_is_a_clear_error(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    taken = tmp_path / "taken"
    taken.write_text("keep me", encoding="utf-8")
    assert main(["report", "ta", "--month", str(MONTH), "--out", str(taken), "--store", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mimamori report: cannot write to --out") and "Traceback" not in err
    assert taken.read_text(encoding="utf-8") == "keep me"
    assert main(["report", "ta", "--month", str(MONTH), "--out", str(tmp_path), "--store", url]) == 0  # an existing directory
    assert (tmp_path / f"ta-{MONTH}.eml").exists()
