"""The customer portal in a real browser: Debian's headless Chromium driven by Selenium through
Debian's chromedriver (scripts/chromium.sh installs both; the tests fail without them).

The data come the way a deployment gets them: recorded events and heartbeats replayed by
`mimamori replay --store` into an embedded store (a ★★★ alert whose evidence carries `<script>` and
a URL, a UTM that stops, peers enough for an average, a tenant without UTMs). Each screen is saved
as a PNG under var/screenshots/ for a person to look at.
"""
from __future__ import annotations

import http.cookiejar
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import orjson
import pyotp
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.support.ui import WebDriverWait

from pipeline.config import Settings
from pipeline.io.store.backends import Store, open_store
from pipeline.io.store.views import read_view
from portal import accounts as acc
from portal.data import report_id
from tests.support.portal import running_portal

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TZ = ZoneInfo("Asia/Tokyo")
NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)
START = NOW - timedelta(hours=2)
TODAY = NOW.astimezone(TZ).date()
SCRIPT_URL = "http://evil.example.com/<script>alert(1)</script>/payload.exe"
SCRIPT_FILE = "<script>alert('file')</script>.exe"
PEERS = ("t-p1", "t-p2", "t-p3", "t-p4")


def _iso(value: datetime) -> str:
    return value.astimezone(TZ).isoformat(timespec="milliseconds")


def _registry() -> dict[str, Any]:
    start = (TODAY - timedelta(days=60)).isoformat()

    def tenant(tid: str, name: str) -> dict[str, Any]:
        return {"tenant_id": tid, "name": name, "notify_emails": [f"security@{tid}.example.jp"], "locale": "ja",
                "service_start": start, "contract_end": None, "industry": "retail", "region": "kanto",
                "size_band": "10-49", "active": True}

    tenants = [tenant("t-a", "株式会社エー"), tenant("t-b", "株式会社ビー"), tenant("t-none", "株式会社未設置"),
               *(tenant(p, f"株式会社{p}") for p in PEERS)]
    utms = [("utm-a-1", "t-a"), ("utm-a-2", "t-a"), ("utm-b-1", "t-b"), *((f"utm-{p}", p) for p in PEERS)]
    return {"tenants": tenants, "utms": [{"utm_id": u, "tenant_id": t, "model": "ZA-SA3500G",
                                         "registered_at": f"{start}T00:00:00Z", "active": True} for u, t in utms]}


def _lines() -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    utms = ["utm-a-1", "utm-a-2", "utm-b-1", *(f"utm-{p}" for p in PEERS)]
    at = START
    while at < NOW - timedelta(minutes=1):
        for utm in utms:
            if utm == "utm-a-2" and at > START + timedelta(minutes=40):
                continue  # utm-a-2 stops: offline once silent for 10 minutes
            lines.append({"v": 1, "utm_id": utm, "ts": _iso(at)})
        at += timedelta(minutes=2)

    def event(n: int, utm: str, minutes: int, type_: str, action: str, category: str, **extra: Any) -> dict[str, Any]:
        return {"v": 1, "event_id": f"{utm}-e{n}", "utm_id": utm, "ts": _iso(START + timedelta(minutes=minutes, seconds=n)),
                "type": type_, "action": action, "direction": "outbound", "src_ip": "192.168.1.10",
                "src_mac": "02:00:00:00:00:10", "dst_ip": "198.51.100.7", "threat_category": category, **extra}

    events = [
        event(1, "utm-a-1", 30, "av", "detected", "malware", signature="Trojan.<b>Generic</b>", url=SCRIPT_URL,
              file_name=SCRIPT_FILE, domain="evil.example.com", signature_id="sig-1"),
        *(event(10 + i, "utm-a-1", 35 + i, "ips", "blocked", "exploit", signature="SQL injection") for i in range(6)),
        *(event(20 + i, "utm-a-2", 20 + i, "url", "blocked", "phishing", url="http://phish.example.net/login")
          for i in range(3)),
        event(30, "utm-b-1", 50, "av", "detected", "malware", signature="Trojan.B", file_name="b-only.exe"),
        *(event(40 + i, f"utm-{p}", 60 + i, "ips", "blocked", "exploit") for i, p in enumerate(PEERS)),
        *({"v": 1, "event_id": f"utm-a-1-w{i}", "utm_id": "utm-a-1", "ts": _iso(START + timedelta(minutes=70 + i)),
           "type": "web", "action": "allowed", "direction": "outbound", "src_ip": "192.168.1.11",
           "dst_ip": "198.51.100.8", "web_category": ["business", "news", "social-network"][i % 3],
           "app_name": ["Microsoft 365", "Chatwork", "LINE"][i % 3]} for i in range(9)),
    ]
    lines += events
    return sorted(lines, key=lambda line: line["ts"])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    work = tmp_path_factory.mktemp("portal")
    (work / "registry.json").write_bytes(orjson.dumps(_registry()))
    (work / "events.jsonl").write_bytes(b"\n".join(orjson.dumps(line) for line in _lines()) + b"\n")
    url = f"chdb://{work / 'store'}"
    done = subprocess.run([sys.executable, "-m", "mimamori.cli", "replay", str(work / "events.jsonl"), "--registry",
                           str(work / "registry.json"), "--store", url, "--until", NOW.isoformat()],
                          capture_output=True, timeout=600, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "MIMAMORI_TZ": "Asia/Tokyo"})
    assert done.returncode == 0, done.stderr.decode()
    opened = open_store(url)
    opened.insert("notices", [{
        "notice_id": "mnt-portal", "version": 1, "kind": "maintenance-planned", "level": None,
        "starts_at": (NOW + timedelta(days=40)).isoformat(), "ends_at": (NOW + timedelta(days=40, hours=3)).isoformat(),
        "audience_all": 1, "audience_tenants": [], "audience_models": [], "audience_firmware": [],
        "title": "基盤設備の定期メンテナンス", "title_en": "", "mailed": 1, "cancelled": 0, "short_notice": 0,
        "published_at": NOW.isoformat(), "updated_at": NOW.isoformat(), "deleted": 0}])
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(scope="module")
def portal(store: Store) -> Iterator[str]:
    with running_portal(store, Settings()) as (_, base):
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    for path in (CHROMIUM, CHROMEDRIVER):
        assert Path(path).exists(), f"{path} is missing: run scripts/chromium.sh install (Debian's chromium, chromium-driver)"
    profile = tempfile.mkdtemp(prefix="portal-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1100", "--lang=ja", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def shot(driver: WebDriver, name: str) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(800, min(4000, int(height) + 40)))
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    driver.set_window_size(1280, 1100)


def issue(store: Store, tenant: str) -> tuple[acc.Account, str]:
    """What `mimamori account issue` does, without the mail (tests/unit/test_portal.py renders it)."""
    account, password = acc.new_account(tenant, f"admin@{tenant}.example.jp", datetime.now(timezone.utc))
    acc.AccountBook(store).save(account)
    return account, password


def fill(driver: WebDriver, **fields: str) -> None:
    for name, value in fields.items():
        element = driver.find_element(By.NAME, name)
        element.clear()
        element.send_keys(value)


def login(driver: WebDriver, base: str, user: str, password: str) -> None:
    driver.delete_all_cookies()
    driver.get(base + "/login")
    fill(driver, user=user, password=password)
    click(driver, driver.find_element(By.ID, "login"))


def first_login(driver: WebDriver, base: str, store: Store, tenant: str, user: str) -> None:
    account, password = issue(store, tenant)
    login(driver, base, account.login, password)
    fill(driver, user=user, password="own-password-123", confirm="own-password-123")
    click(driver, driver.find_element(By.ID, "save"))
    click(driver, driver.find_element(By.ID, "skip"))


def click(driver: WebDriver, element: Any) -> None:
    """Click a link or a submit button and wait for the next page (no fixed sleep)."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 30).until(lambda _: _left(page))


def _left(page: Any) -> bool:
    """The old page's root is gone. Chromium answers a check made while it swaps the document
    either 'stale element' or, in the middle of the swap, 'node does not belong to the document'
    (seen once in a full run): both mean the page was left."""
    try:
        page.is_enabled()
        return False
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc):
            return True
        raise


def text(driver: WebDriver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


class State:
    totp_secret = ""


# -- login ----------------------------------------------------------------------------------------

def test_first_login_own_credentials_totp_enrolment_and_a_login_with_a_code(
        portal: str, store: Store, browser: WebDriver) -> None:
    account, password = issue(store, "t-a")
    browser.get(portal + "/")
    assert browser.current_url.endswith("/login")
    shot(browser, "01-login")
    login(browser, portal, account.login, password)
    assert browser.current_url.endswith("/setup")
    fill(browser, user="a-admin", password="short", confirm="short")
    click(browser, browser.find_element(By.ID, "save"))
    assert "10文字以上" in text(browser, "error")
    fill(browser, user="a-admin", password="own-password-123", confirm="own-password-123")
    shot(browser, "02-setup")
    click(browser, browser.find_element(By.ID, "save"))
    assert browser.current_url.endswith("/setup/totp")
    secret = text(browser, "secret").strip()
    shot(browser, "03-totp-enrolment")
    fill(browser, code="000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    click(browser, browser.find_element(By.ID, "enable"))
    assert "確認コードが正しくありません" in text(browser, "error")
    secret = text(browser, "secret").strip()
    fill(browser, code=pyotp.TOTP(secret).now())
    click(browser, browser.find_element(By.ID, "enable"))
    assert browser.current_url == portal + "/"
    State.totp_secret = secret
    # the temporary credentials are gone; the own ones need the code now
    login(browser, portal, account.login, password)
    assert "正しくありません" in text(browser, "error")
    login(browser, portal, "a-admin", "own-password-123")
    assert browser.current_url.endswith("/login/totp")
    shot(browser, "04-login-code")
    fill(browser, code=pyotp.TOTP(secret).now())
    click(browser, browser.find_element(By.ID, "verify"))
    assert browser.current_url == portal + "/"
    stored = acc.AccountBook(store).by_login("a-admin")
    assert stored is not None and stored.uses_totp and secret not in stored.totp_secret


# -- screens --------------------------------------------------------------------------------------

def test_the_summary_shows_the_numbers_of_the_views(portal: str, store: Store, browser: WebDriver) -> None:
    browser.get(portal + "/")
    shot(browser, "05-summary")
    first = TODAY - timedelta(days=29)
    rows = read_view(store, "portal_detections_daily", tz="Asia/Tokyo", tenant="t-a", from_day=first, to_day=TODAY)
    by_type = {t: sum(int(r["detections"]) for r in rows if r["type"] == t) for t in ("av", "ips", "url")}
    assert by_type == {"av": 1, "ips": 6, "url": 3}
    assert text(browser, "total") == str(sum(by_type.values()))
    assert {t: text(browser, f"type-{t}") for t in by_type} == {t: str(n) for t, n in by_type.items()}
    blocked = sum(int(r["detections"]) for r in rows if r["action"] in ("blocked", "disarmed"))
    assert text(browser, "blocked") == str(blocked)
    alerts = read_view(store, "portal_alerts", tz="Asia/Tokyo", tenant="t-a", from_day=first, to_day=TODAY)
    shown = [row.get_attribute("data-alert") for row in browser.find_elements(By.CSS_SELECTOR, "#alerts tbody tr")]
    assert sorted(shown) == sorted(a["alert_id"] for a in alerts)
    assert "要対応" in text(browser, "state")
    assert text(browser, "utm-count") == "2" and text(browser, "utm-offline") == "1"


def test_an_alerts_detail_escapes_and_defangs_what_came_from_events(
        portal: str, store: Store, browser: WebDriver) -> None:
    browser.get(portal + "/")
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#alerts tbody tr") if "★★★" in r.text)
    click(browser, row.find_element(By.LINK_TEXT, "問題を確認"))
    alert_id = browser.current_url.rsplit("/", 1)[1]
    alert = next(a for a in read_view(store, "portal_alerts", tz="Asia/Tokyo", tenant="t-a") if a["alert_id"] == alert_id)
    assert alert["grade"] == 3 and alert["insurance_eligible_until"]
    shot(browser, "06-alert")
    assert "★★★" in text(browser, "grade") and "フルスキャン" in text(browser, "action")
    deadline = str(alert["insurance_eligible_until"]).replace("-", "/")
    assert deadline in text(browser, "insurance")
    assert browser.find_elements(By.TAG_NAME, "script") == []
    evidence = text(browser, "detections")
    assert "hxxp://evil[.]example[.]com/<script>alert(1)</script>/payload[.]exe" in evidence
    assert "<script>alert('file')</script>[.]exe" in evidence and "Trojan[.]<b>Generic</b>" in evidence
    source = browser.page_source
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in source and "evil.example.com" not in source


def test_all_detections_are_listed_filtered_and_paged(portal: str, browser: WebDriver) -> None:
    browser.get(portal + f"/detections?from={TODAY - timedelta(days=2)}&to={TODAY}")
    shot(browser, "07-detections")
    assert text(browser, "count").startswith("10件中")
    browser.get(portal + f"/detections?from={TODAY - timedelta(days=2)}&to={TODAY}&type=ips")
    assert text(browser, "count").startswith("6件中")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#detections tbody tr")) == 6


def test_the_utm_status_shows_the_stop(portal: str, store: Store, browser: WebDriver) -> None:
    browser.get(portal + "/utms")
    shot(browser, "08-utm-status")
    status = {u["utm_id"]: u for u in read_view(store, "portal_utm_status", tz="Asia/Tokyo", tenant="t-a")}
    assert status["utm-a-2"]["status"] == "offline" and status["utm-a-1"]["status"] == "online"
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-utm="utm-a-2"]')
    assert "停止" in row.find_element(By.CLASS_NAME, "status").text
    since = status["utm-a-2"]["offline_since"]
    since = datetime.fromisoformat(since.replace("Z", "+00:00")) if isinstance(since, str) else since
    since = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
    assert row.find_element(By.CLASS_NAME, "since").text == since.astimezone(TZ).strftime("%Y/%m/%d %H:%M")
    assert "オンライン" in browser.find_element(By.CSS_SELECTOR, 'tr[data-utm="utm-a-1"] .status').text
    assert text(browser, "offline") == "1"
    click(browser, browser.find_element(By.LINK_TEXT, "utm-a-2"))
    shot(browser, "09-utm")
    assert "停止" in text(browser, "status")


def test_the_peer_chart_for_a_chosen_period(portal: str, store: Store, browser: WebDriver) -> None:
    browser.get(portal + "/compare")
    first = TODAY - timedelta(days=6)
    # choosing the period in the form (the page itself has no script; the test sets the date fields)
    browser.execute_script("document.querySelector('input[name=from]').value = arguments[0];"
                           "document.querySelector('input[name=to]').value = arguments[1];", first.isoformat(),
                           TODAY.isoformat())
    click(browser, browser.find_element(By.CSS_SELECTOR, "form.period button"))
    assert f"from={first.isoformat()}" in browser.current_url
    shot(browser, "10-peer-comparison")
    days = browser.find_elements(By.CSS_SELECTOR, "#peer-chart g.day")
    assert [d.get_attribute("data-day") for d in days] == [(first + timedelta(days=i)).isoformat() for i in range(7)]
    own = read_view(store, "portal_detections_daily", tz="Asia/Tokyo", tenant="t-a", from_day=first, to_day=TODAY)
    peers = read_view(store, "portal_peer_average_daily", tz="Asia/Tokyo", from_day=first, to_day=TODAY)
    for day in days:
        d = day.get_attribute("data-day")
        assert int(day.get_attribute("data-total")) == sum(int(r["detections"]) for r in own if str(r["day"]) == d)
        peer = [float(r["avg_detections"]) for r in peers if str(r["day"]) == d]
        assert (day.get_attribute("data-peer") is None) == (not peer)
        if peer:
            assert abs(float(day.get_attribute("data-peer")) - sum(peer)) < 0.01
    assert any(day.get_attribute("data-peer") for day in days), "7 tenants in service: the average is shown"
    assert text(browser, "own-total") == "10"
    click(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "自社UTM装置の比較"))
    shot(browser, "11-own-utm-comparison")
    bars = {b.get_attribute("data-name"): b.get_attribute("data-total")
            for b in browser.find_elements(By.CSS_SELECTOR, "#utm-chart g.bar")}
    assert bars == {"utm-a-1": "7", "utm-a-2": "3"}


def test_usage_notices_and_reports(portal: str, browser: WebDriver) -> None:
    browser.get(portal + "/usage")
    shot(browser, "12-usage")
    bars = {b.get_attribute("data-name"): b.get_attribute("data-total")
            for b in browser.find_elements(By.CSS_SELECTOR, "#category-chart g.bar")}
    assert bars == {"business": "3", "news": "3", "social-network": "3"}
    browser.get(portal + "/notices")
    shot(browser, "13-notices")
    assert "基盤設備の定期メンテナンス" in text(browser, "notices")
    browser.get(portal + "/reports")
    shot(browser, "14-reports")
    click(browser, browser.find_element(By.CSS_SELECTOR, "#reports li a"))
    shot(browser, "15-monthly-report")
    shares = {r.get_attribute("data-utm"): r.find_element(By.CLASS_NAME, "share").text
              for r in browser.find_elements(By.CSS_SELECTOR, "#availability-table tbody tr")}
    assert shares["utm-a-1"] == "100.0%"
    strip = browser.find_element(By.CSS_SELECTOR, '#availability g.strip[data-utm="utm-a-1"]')
    online = [float(r.get_attribute("width")) for r in strip.find_elements(By.CSS_SELECTOR, 'rect[data-status="online"]')]
    assert online and sum(online) >= 2, "a UTM online since this morning is drawn online"
    assert not strip.find_elements(By.CSS_SELECTOR, 'rect[data-status="never_seen"]'), "nor as 未接続 before"


def test_a_customer_without_a_utm_gets_its_own_screen(portal: str, store: Store, browser: WebDriver) -> None:
    first_login(browser, portal, store, "t-none", "none-admin")
    assert browser.current_url == portal + "/"
    shot(browser, "16-no-utm")
    assert "UTM装置はまだ登録されていません" in text(browser, "no-utm")


def test_repeated_failures_lock_the_account(portal: str, store: Store, browser: WebDriver) -> None:
    account, password = issue(store, "t-b")
    for attempt in range(acc.MAX_FAILURES):
        login(browser, portal, account.login, "wrong-password")
        assert "正しくありません" in text(browser, "error") or "ロック" in text(browser, "error"), attempt
        stored = acc.AccountBook(store).by_id(account.account_id)
        assert stored is not None and (stored.failures == attempt + 1 or stored.locked_until), (attempt, stored)
    login(browser, portal, account.login, password)
    shot(browser, "17-locked")
    assert browser.current_url.endswith("/login"), browser.current_url
    assert "ロックされています" in text(browser, "error"), browser.find_element(By.TAG_NAME, "main").text


# -- isolation and forms --------------------------------------------------------------------------

def _opener_with(browser: WebDriver, base: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    host = urllib.parse.urlsplit(base).hostname
    for cookie in browser.get_cookies():
        jar.set_cookie(http.cookiejar.Cookie(0, cookie["name"], cookie["value"], None, False, host, False, False, "/",
                                             True, False, None, False, None, None, {}))
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))


def _status(opener: urllib.request.OpenerDirector, url: str, data: bytes | None = None) -> tuple[int, str]:
    try:
        with opener.open(url, data, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_another_tenants_alerts_utms_and_reports_are_404(portal: str, store: Store, browser: WebDriver) -> None:
    login(browser, portal, "a-admin", "own-password-123")
    fill(browser, code=pyotp.TOTP(State.totp_secret).now())
    click(browser, browser.find_element(By.ID, "verify"))
    assert browser.current_url == portal + "/"
    opener = _opener_with(browser, portal)
    b_alerts = [a["alert_id"] for a in read_view(store, "portal_alerts", tz="Asia/Tokyo", tenant="t-b")]
    assert b_alerts
    month = TODAY.strftime("%Y-%m")
    for path in [f"/alerts/{b_alerts[0]}", "/utms/utm-b-1", f"/reports/{report_id('t-b', month)}"]:
        status, body = _status(opener, portal + path)
        assert status == 404, path
        assert "b-only" not in body and "utm-b-1" not in body and "株式会社ビー" not in body
    assert _status(opener, portal + f"/reports/{report_id('t-a', month)}")[0] == 200
    status, body = _status(opener, portal + "/detections?utm=utm-b-1")
    assert status == 200 and "b-only" not in body and "0件中" in body


def test_a_form_without_its_csrf_token_is_refused(portal: str, browser: WebDriver) -> None:
    opener = _opener_with(browser, portal)
    status, _ = _status(opener, portal + "/logout", b"")
    assert status == 403
    status, _ = _status(opener, portal + "/logout", b"csrf=forged")
    assert status == 403
    assert _status(opener, portal + "/")[0] == 200, "still logged in"
    anonymous = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    status, _ = _status(anonymous, portal + "/login", b"user=a-admin&password=own-password-123")
    assert status == 403


def test_pages_carry_a_strict_content_security_policy(portal: str) -> None:
    with urllib.request.urlopen(portal + "/login", timeout=10) as response:
        csp = response.headers["Content-Security-Policy"]
        cookie = response.headers["Set-Cookie"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "'unsafe-inline'" not in csp
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    with urllib.request.urlopen(portal + "/metrics", timeout=10) as response:
        assert b"mimamori_portal_requests_total" in response.read()
    with urllib.request.urlopen(portal + "/health", timeout=10) as response:
        assert orjson.loads(response.read()) == {"status": "ok"}
