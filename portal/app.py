"""The customer portal (セキュリティサービスポータル): a Starlette application of server-rendered
Japanese pages over the portal_* views, each request bound to the tenant of its account.

No JavaScript anywhere: forms post, charts are SVG drawn here. Every page is sent with a strict
Content-Security-Policy (nothing inline, nothing from elsewhere). Store calls are blocking (chdb or
clickhouse-driver): they run in a worker thread, one at a time per store connection.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from pipeline.config import Settings
from pipeline.mail.text import defang, defang_links, one_line
from pipeline.models import GRADE_STARS, THREAT_TYPES
from pipeline.resources import TEMPLATES
from pipeline.io.store.backends import Store, StoreError, StoreUnavailable
from portal import accounts as acc
from portal import charts
from portal import sessions as ses
from portal.data import ACTIONS, BLOCKING, PAGE_SIZE, Period, TenantData, binds_tenant, period_of, report_id
from portal.metrics import PortalMetrics

log = logging.getLogger("mimamori.portal")

MAX_FORM = 16 * 1024
ACCOUNT_TTL_S = 5.0
PEERS_TTL_S = 60.0
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY", "Cache-Control": "no-store", "Cross-Origin-Opener-Policy": "same-origin",
}
TYPE_LABELS = charts.TYPE_LABELS
ACTION_LABELS = {"blocked": "遮断", "disarmed": "無害化", "detected": "検知のみ", "allowed": "許可"}
DIRECTION_LABELS = {"outbound": "社内→インターネット", "inbound": "インターネット→社内", "internal": "社内間"}
STATUS_LABELS = {"online": "オンライン", "offline": "停止", "never_seen": "未接続"}
ALERT_STATUS_LABELS = {"investigating": "調査中", "open": "対応待ち", "closed": "完了"}
GRADE_LABELS = {3: "★★★（高）", 2: "★★☆（中）", 1: "★☆☆（低）", 0: "※調査中※"}
GRADE_ADVICE = {
    3: "マルウェアに感染している可能性が高い状態です。該当の端末をネットワークから外し、ウイルス対策ソフトでフルスキャンを実施してください。",
    2: "マルウェアに感染している可能性があります。ウイルス対策ソフトでフルスキャンを実施してください。",
    1: "感染の可能性は低いものの、セキュリティ上の注意が必要です。",
    0: "感染の有無を調査中です。調査が完了しましたら調査結果をメールでお知らせします。",
}
KIND_LABELS = {"maintenance-planned": "計画メンテナンス", "maintenance-emergency": "緊急メンテナンス", "fault": "障害",
               "firmware": "ファームウェア更新"}


class NotFound(Exception):
    """Nothing of this account's tenant under that address: 404, whatever exists elsewhere."""


@dataclass
class Viewer:
    """Who asks: the session, and the account it belongs to (None when anonymous)."""

    session: ses.Session
    account: acc.Account | None
    fresh_cookie: bool


class Portal:
    def __init__(self, settings: Settings, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        if not settings.portal_key:
            raise ValueError("MIMAMORI_PORTAL_KEY is not set")
        self.settings = settings
        self.store = store
        self.tz = settings.tz
        self.secrets = acc.Secrets(settings.portal_key)
        self.key = self.secrets.cookie_key
        self.book = acc.AccountBook(store)
        self.bind = binds_tenant(store)
        self.metrics = PortalMetrics()
        self.clock = clock
        self.secure_cookie = False
        self._lock = threading.Lock()
        self._accounts: dict[str, tuple[float, acc.Account | None]] = {}
        self._peers: dict[tuple[date, date], tuple[float, Any]] = {}
        self.store_error: str | None = None
        self.env = Environment(loader=FileSystemLoader(str(TEMPLATES / "portal")), autoescape=True,
                               undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.env.filters.update(when=self._when, day=self._day, safe_text=_safe_text, num=_num, plain=_plain,
                                link_text=_link_text,
                                stars=lambda g: GRADE_STARS.get(int(g), "") or "※調査中※")
        self.env.globals.update(TYPE_LABELS=TYPE_LABELS, ACTION_LABELS=ACTION_LABELS, STATUS_LABELS=STATUS_LABELS,
                                ALERT_STATUS_LABELS=ALERT_STATUS_LABELS, GRADE_LABELS=GRADE_LABELS,
                                DIRECTION_LABELS=DIRECTION_LABELS, KIND_LABELS=KIND_LABELS, THREAT_TYPES=THREAT_TYPES)

    # -- plumbing --------------------------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    def today(self) -> date:
        return self.now().astimezone(self.tz).date()

    def _when(self, value: Any) -> str:
        if value is None or value == "":
            return "-"
        if isinstance(value, datetime):
            return value.astimezone(self.tz).strftime("%Y/%m/%d %H:%M")
        if isinstance(value, date):
            return value.strftime("%Y/%m/%d")
        return str(value)

    def _day(self, value: date | None) -> str:
        return value.strftime("%Y/%m/%d") if value else "-"

    async def db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def call() -> Any:
            with self._lock:
                return fn(*args, **kwargs)
        try:
            result = await run_in_threadpool(call)
        except StoreUnavailable as exc:
            self.store_error = type(exc).__name__
            self.metrics.store_failures.inc()
            raise
        self.store_error = None
        return result

    def render(self, viewer: Viewer, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        account = viewer.account
        context.setdefault("nav", "")
        html = self.env.get_template(name).render(
            csrf=ses.csrf_token(viewer.session, self.key), logged_in=viewer.session.step == ses.FULL,
            login=account.login if account and viewer.session.step == ses.FULL else None, **context)
        response = HTMLResponse(html, status_code=status)
        if viewer.fresh_cookie:
            self.set_cookie(response, viewer.session)
        return response

    def set_cookie(self, response: Response, session: ses.Session) -> None:
        response.set_cookie(ses.COOKIE, ses.encode(session, self.key), max_age=ses.LIFETIME_S, path="/",
                            httponly=True, samesite="strict", secure=self.secure_cookie)

    def redirect(self, to: str, session: ses.Session | None = None) -> RedirectResponse:
        response = RedirectResponse(to, status_code=303)
        if session is not None:
            self.set_cookie(response, session)
        return response

    async def viewer(self, request: Request) -> Viewer:
        now = self.clock()
        session = ses.decode(request.cookies.get(ses.COOKIE), self.key, now)
        if session is None:
            return Viewer(ses.anonymous(now), None, True)
        if session.anonymous:
            return Viewer(session, None, False)
        account = await self.account(session.account_id)
        if account is None or account.disabled or account.session_epoch != session.epoch:
            return Viewer(ses.anonymous(now), None, True)
        return Viewer(session, account, False)

    async def account(self, account_id: str) -> acc.Account | None:
        """The account of a session, read again at most every ACCOUNT_TTL_S: another replica's
        disable, reset or password change ends this replica's sessions within that time."""
        now = time.monotonic()
        cached = self._accounts.get(account_id)
        if cached is not None and now - cached[0] < ACCOUNT_TTL_S:
            return cached[1]
        account = await self.db(self.book.by_id, account_id)
        if len(self._accounts) > 10_000:
            self._accounts.clear()
        self._accounts[account_id] = (now, account)
        return account

    async def save(self, account: acc.Account) -> None:
        """Write a change; what this replica wrote is what it reads next (no stale count or epoch)."""
        await self.db(self.book.save, account)
        self._accounts[account.account_id] = (time.monotonic(), account)

    def peers(self, data: TenantData, period: Period) -> Any:
        """The peer average is the same for every tenant and changes with the day's rows: read it
        at most once a minute per period (called in the store thread)."""
        key = (period.first, period.last)
        cached = self._peers.get(key)
        if cached is not None and time.monotonic() - cached[0] < PEERS_TTL_S:
            return cached[1]
        found = data.peers_per_day(period)
        if len(self._peers) > 1000:
            self._peers.clear()
        self._peers[key] = (time.monotonic(), found)
        return found

    async def form(self, request: Request, viewer: Viewer) -> dict[str, str] | None:
        """The posted fields, or None when the CSRF token is missing or wrong."""
        body = await request.body()
        if len(body) > MAX_FORM:
            return None
        fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        if not ses.csrf_ok(viewer.session, fields.get("csrf"), self.key):
            self.metrics.csrf_refused.inc()
            return None
        return fields

    def forbidden_form(self, viewer: Viewer) -> HTMLResponse:
        return self.render(viewer, "error.html.j2", 403, title="送信を受け付けられません",
                           message="フォームの有効期限が切れたか、不正な送信です。ページを開き直してからもう一度お試しください。")

    def data(self, account: acc.Account) -> TenantData:
        return TenantData(self.store, account.tenant_id, self.tz, bind=self.bind)

    # -- login -----------------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        if viewer.account and viewer.session.step == ses.FULL:
            return self.redirect("/")
        return self.render(viewer, "login.html.j2", error=None, user="")

    async def login(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        fields = await self.form(request, viewer)
        if fields is None:
            return self.forbidden_form(viewer)
        user, password = fields.get("user", "").strip()[:100], fields.get("password", "")[:200]
        account = await self.db(self.book.by_login, user) if user else None
        now = self.now()
        result = await run_in_threadpool(acc.check_password, account, password, now)
        if result.account is not None and result.account is not account:
            await self.save(result.account)
        self.metrics.logins.labels(result.reason).inc()
        if not result.ok:
            message = {
                "locked": "ログインに続けて失敗したため、このアカウントは一時的にロックされています。しばらくしてからお試しください。",
                "disabled": "ユーザIDまたはパスワードが正しくありません。",
                "expired": "仮パスワードの有効期限が切れています。相談窓口に再発行をご依頼ください。",
            }.get(result.reason, "ユーザIDまたはパスワードが正しくありません。")
            if result.reason == "wrong" and result.account is not None and result.account.locked(now):
                message = ("ログインに続けて失敗したため、このアカウントは一時的にロックされています。"
                           "しばらくしてからお試しください。")
            return self.render(viewer, "login.html.j2", 401 if result.reason != "locked" else 423, error=message,
                               user=user)
        assert result.account is not None
        account = result.account
        step = ses.NEED_TOTP if account.uses_totp else ses.NEED_CREDENTIALS if account.temporary else \
            ses.FULL if account.totp_decided else ses.NEED_DECISION
        session = ses.logged_in(account.account_id, account.session_epoch, step, self.clock())
        return self.redirect(_next_page(step), session)

    async def totp_page(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        if viewer.session.step != ses.NEED_TOTP:
            return self.redirect("/login")
        return self.render(viewer, "login_totp.html.j2", error=None)

    async def totp(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        fields = await self.form(request, viewer)
        if fields is None:
            return self.forbidden_form(viewer)
        account = viewer.account
        if viewer.session.step != ses.NEED_TOTP or account is None:
            return self.redirect("/login")
        now = self.now()
        if account.locked(now):
            self.metrics.logins.labels("locked").inc()
            return self.render(viewer, "login_totp.html.j2", 423, error="アカウントは一時的にロックされています。")
        secret = self.secrets.decrypt(account.totp_secret)
        if secret is None or not acc.totp_ok(secret, fields.get("code", ""), now):
            await self.save(acc.failed(account, now))
            self.metrics.logins.labels("totp_wrong").inc()
            return self.render(viewer, "login_totp.html.j2", 401, error="確認コードが正しくありません。")
        account = acc.succeeded(account, now)
        if account is not viewer.account:
            await self.save(account)
        self.metrics.logins.labels("ok").inc()
        step = ses.NEED_CREDENTIALS if account.temporary else ses.FULL
        return self.redirect(_next_page(step), ses.logged_in(account.account_id, account.session_epoch, step, self.clock()))

    async def setup_page(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        if viewer.session.step != ses.NEED_CREDENTIALS or viewer.account is None:
            return self.redirect("/login")
        return self.render(viewer, "setup.html.j2", error=None, user="")

    async def setup(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        fields = await self.form(request, viewer)
        if fields is None:
            return self.forbidden_form(viewer)
        account = viewer.account
        if viewer.session.step != ses.NEED_CREDENTIALS or account is None:
            return self.redirect("/login")
        login, password = fields.get("user", "").strip(), fields.get("password", "")
        problem = acc.login_problem(login) or acc.password_problem(password, fields.get("confirm", ""), login)
        if problem is None and await self.db(self.book.login_taken, login, account.account_id):
            problem = "このユーザIDは既に使われています。別のユーザIDを指定してください。"
        if problem:
            return self.render(viewer, "setup.html.j2", 400, error=problem, user=login)
        account = await run_in_threadpool(acc.set_credentials, account, login, password, self.now())
        await self.save(account)
        step = ses.FULL if account.totp_decided else ses.NEED_DECISION
        return self.redirect(_next_page(step), ses.logged_in(account.account_id, account.session_epoch, step, self.clock()))

    async def totp_setup_page(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        if viewer.session.step not in (ses.NEED_DECISION, ses.FULL) or viewer.account is None:
            return self.redirect("/login")
        return self._totp_setup(viewer, None, acc.new_totp_secret())

    def _totp_setup(self, viewer: Viewer, error: str | None, secret: str, status: int = 200) -> HTMLResponse:
        assert viewer.account is not None
        return self.render(viewer, "setup_totp.html.j2", status, error=error, secret=secret,
                           pending=self.secrets.encrypt(secret), uri=acc.totp_uri(secret, viewer.account.login),
                           first=viewer.session.step == ses.NEED_DECISION, enrolled=viewer.account.uses_totp)

    async def totp_setup(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        fields = await self.form(request, viewer)
        if fields is None:
            return self.forbidden_form(viewer)
        account = viewer.account
        if viewer.session.step not in (ses.NEED_DECISION, ses.FULL) or account is None:
            return self.redirect("/login")
        now = self.now()
        if fields.get("decision") == "skip":
            if not account.totp_decided:
                account = acc.set_totp(account, account.totp_secret, now)
                await self.save(account)
            return self.redirect("/", ses.logged_in(account.account_id, account.session_epoch, ses.FULL, self.clock()))
        secret = self.secrets.decrypt(fields.get("pending", ""))
        if secret is None:
            return self._totp_setup(viewer, "設定の有効期限が切れました。もう一度お試しください。", acc.new_totp_secret(), 400)
        if not acc.totp_ok(secret, fields.get("code", ""), now):
            return self._totp_setup(viewer, "確認コードが正しくありません。認証アプリに表示された6桁の数字を入力してください。",
                                    secret, 400)
        account = acc.set_totp(account, self.secrets.encrypt(secret), now)
        await self.save(account)
        return self.redirect("/", ses.logged_in(account.account_id, account.session_epoch, ses.FULL, self.clock()))

    async def logout(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        if await self.form(request, viewer) is None:
            return self.forbidden_form(viewer)
        return self.redirect("/login", ses.anonymous(self.clock()))

    # -- pages -----------------------------------------------------------------------------------

    async def page(self, request: Request, build: Callable[[Viewer, acc.Account, Request], Awaitable[Response]]) -> Response:
        viewer = await self.viewer(request)
        if viewer.account is None or viewer.session.step != ses.FULL:
            if viewer.account is not None:
                return self.redirect(_next_page(viewer.session.step))
            response = self.redirect("/login")
            if viewer.fresh_cookie:
                self.set_cookie(response, viewer.session)
            return response
        try:
            return await build(viewer, viewer.account, request)
        except NotFound:
            return self.render(viewer, "error.html.j2", 404, title="ページが見つかりません",
                               message="指定されたページは存在しないか、表示する権限がありません。")

    def _period(self, request: Request, default_days: int = 30) -> Period:
        return period_of(request.query_params.get("from"), request.query_params.get("to"), self.today(), default_days)

    async def summary(self, viewer: Viewer, account: acc.Account, request: Request) -> Response:
        data = self.data(account)
        period = self._period(request)

        def read() -> dict[str, Any]:
            utms = data.utms()
            if not utms:
                return {"utms": []}
            return {"utms": utms, "totals": data.detection_totals(period), "counts": data.alert_counts(period),
                    "alerts": data.alerts(period, min_grade=0, limit=20)}
        found = await self.db(read)
        if not found["utms"]:
            return self.render(viewer, "no_utm.html.j2", nav="summary")
        totals, counts = found["totals"], found["counts"]
        by_type = {t: sum(totals[t].values()) for t in THREAT_TYPES}
        blocked = sum(totals[t][a] for t in THREAT_TYPES for a in BLOCKING)
        open_by_grade = {g: counts.get(g, {}).get("open", 0) + counts.get(g, {}).get("investigating", 0) for g in (3, 2, 1, 0)}
        offline = [u for u in found["utms"] if u["status"] == "offline"]
        state = _overall(open_by_grade, len(offline), len(found["utms"]))
        return self.render(viewer, "summary.html.j2", nav="summary", period=period, totals=totals, by_type=by_type,
                           total=sum(by_type.values()), blocked=blocked, counts=counts, open_by_grade=open_by_grade,
                           alerts=found["alerts"], utms=found["utms"], offline=offline, state=state,
                           min_day=self.today() - timedelta(days=89), today=self.today())

    async def alert(self, viewer: Viewer, account: acc.Account, request: Request) -> Response:
        alert_id = request.path_params["alert_id"]
        data = self.data(account)

        def read() -> tuple[Any, Any]:
            found = data.alert(alert_id)
            if found is None:
                return None, None
            period = Period(self.today() - timedelta(days=89), self.today())
            return found, data.detections(period, self.now(), alert=alert_id, utm=found["utm_id"], size=30,
                                          since=found["first_seen"] - timedelta(minutes=1),
                                          until=found["last_seen"] + timedelta(minutes=1))
        found, evidence = await self.db(read)
        if found is None:
            raise NotFound
        grade = int(found["grade"])
        until = found["insurance_eligible_until"]
        return self.render(viewer, "alert.html.j2", nav="summary", alert=found, grade=grade,
                           advice=GRADE_ADVICE.get(grade, ""), claim_open=until is not None and until >= self.today(),
                           evidence=evidence[0], evidence_total=evidence[1])

    async def detections(self, viewer: Viewer, account: acc.Account, request: Request) -> Response:
        data = self.data(account)
        period = self._period(request, 7)
        q = request.query_params
        type_ = q.get("type", "") if q.get("type", "") in THREAT_TYPES else ""
        action = q.get("action", "") if q.get("action", "") in ACTIONS else ""
        utm = q.get("utm", "")[:128]
        try:
            page = max(1, min(100000, int(q.get("page", "1"))))
        except ValueError:
            page = 1

        def read() -> Any:
            return data.utms(), data.detections(period, self.now(), type_=type_, action=action, utm=utm, page=page)
        utms, (rows, total) = await self.db(read)
        pages = max(1, -(-total // PAGE_SIZE))
        base = {"from": period.first.isoformat(), "to": period.last.isoformat(), "type": type_, "action": action,
                "utm": utm}
        link = lambda p: "/detections?" + urlencode({**base, "page": p})  # noqa: E731
        return self.render(viewer, "detections.html.j2", nav="detections", period=period, rows=rows, total=total,
                           page=page, pages=pages, prev=link(page - 1) if page > 1 else None,
                           next=link(page + 1) if page < pages else None, type_=type_, action=action, utm=utm,
                           utms=utms, min_day=self.today() - timedelta(days=89), today=self.today())

    async def utms(self, viewer: Viewer, account: acc.Account, request: Request) -> Response:
        utms = await self.db(self.data(account).utms)
        if not utms:
            return self.render(viewer, "no_utm.html.j2", nav="utms")
        return self.render(viewer, "utms.html.j2", nav="utms", utms=utms,
                           online=sum(1 for u in utms if u["status"] == "online"),
                           offline=sum(1 for u in utms if u["status"] == "offline"))

    async def utm(self, viewer: Viewer, account: acc.Account, request: Request) -> Response:
        utm_id = request.path_params["utm_id"]
        data = self.data(account)
        period = self._period(request)

        def read() -> Any:
            utm = next((u for u in data.utms() if u["utm_id"] == utm_id), None)
            if utm is None:
                return None, None, None
            return utm, data.utm_changes(utm_id), data.per_utm(period, utm_id).get(utm_id, {t: 0 for t in THREAT_TYPES})
        utm, changes, counts = await self.db(read)
        if utm is None:
            raise NotFound
        return self.render(viewer, "utm.html.j2", nav="utms", utm=utm, changes=changes, counts=counts, period=period)

    async def compare(self, viewer: Viewer, account: acc.Account, request: Request) -> Response:
        data = self.data(account)
        period = self._period(request)

        def read() -> Any:
            return data.per_day(period), self.peers(data, period)
        own, peers = await self.db(read)
        rows = [{"day": d, "own": sum(own[d].values()),
                 "peer": sum(peers[d].values()) if d in peers else None} for d in period.days]
        own_total = sum(r["own"] for r in rows)
        peer_days = [r for r in rows if r["peer"] is not None]
        return self.render(viewer, "compare.html.j2", nav="compare", period=period, rows=rows,
                           chart=charts.daily_chart(period.days, own, peers, "自社と他社平均の日別検知数"),
                           own_total=own_total, peer_total=sum(r["peer"] for r in peer_days),
                           own_on_peer_days=sum(r["own"] for r in peer_days), peer_days=len(peer_days),
                           min_day=self.today() - timedelta(days=89), today=self.today())

    async def compare_utms(self, viewer: Viewer, account: acc.Account, request: Request) -> Response:
        data = self.data(account)
        period = self._period(request)

        def read() -> Any:
            return data.utms(), data.per_utm(period)
        utms, counts = await self.db(read)
        if not utms:
            return self.render(viewer, "no_utm.html.j2", nav="compare")
        rows = [(u["utm_id"], counts.get(u["utm_id"], {t: 0 for t in THREAT_TYPES})) for u in utms]
        return self.render(viewer, "compare_utms.html.j2", nav="compare", period=period, rows=rows,
                           chart=charts.bars_chart(rows, "UTMごとの検知数"),
                           min_day=self.today() - timedelta(days=89), today=self.today())

    async def usage(self, viewer: Viewer, account: acc.Account, request: Request) -> Response:
        period = self._period(request)
        rows = await self.db(self.data(account).usage, period)
        categories: dict[str, int] = {}
        apps: dict[str, int] = {}
        for row in rows:
            if row["web_category"]:
                categories[row["web_category"]] = categories.get(row["web_category"], 0) + int(row["hits"])
            if row["app_name"]:
                apps[row["app_name"]] = apps.get(row["app_name"], 0) + int(row["hits"])
        top_c = sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))[:15]
        top_a = sorted(apps.items(), key=lambda kv: (-kv[1], kv[0]))[:15]
        safe = lambda items: [(_safe_text(k, 60), v) for k, v in items]  # noqa: E731
        return self.render(viewer, "usage.html.j2", nav="usage", period=period, categories=safe(top_c),
                           apps=safe(top_a), category_chart=charts.simple_bars(safe(top_c), "Webカテゴリ別のアクセス数"),
                           app_chart=charts.simple_bars(safe(top_a), "アプリケーション別の通信数", "#8e44ad"),
                           min_day=self.today() - timedelta(days=89), today=self.today())

    async def notices(self, viewer: Viewer, account: acc.Account, request: Request) -> Response:
        rows = await self.db(self.data(account).notices)
        return self.render(viewer, "notices.html.j2", nav="notices", notices=rows, now=self.now())

    def _months(self, account: acc.Account) -> list[str]:
        from pipeline.report.schedule import Month

        month = Month.of(self.today())
        months = []
        for _ in range(4):
            months.append(str(month))
            month = month.previous()
        return months

    async def reports(self, viewer: Viewer, account: acc.Account, request: Request) -> Response:
        months = [{"month": m, "id": report_id(account.tenant_id, m), "current": i == 0}
                  for i, m in enumerate(self._months(account))]
        return self.render(viewer, "reports.html.j2", nav="reports", months=months)

    async def report(self, viewer: Viewer, account: acc.Account, request: Request) -> Response:
        from pipeline.io.report_gather import gather_month, read_tenant
        from pipeline.report.schedule import Month
        from pipeline.report.summary import summarize

        wanted = request.path_params["report_id"]
        month_text = next((m for m in self._months(account) if report_id(account.tenant_id, m) == wanted), None)
        if month_text is None:
            raise NotFound
        month = Month.parse(month_text)
        now = self.now()

        def read() -> Any:
            store = self.data(account).store  # bound to the tenant on a server with row policies
            tenant = read_tenant(store, account.tenant_id)
            if tenant is None:
                return None
            data = gather_month(store, tenant, month, self.tz, now)
            return summarize(data) if data.days else None
        report = await self.db(read)
        if report is None:
            return self.render(viewer, "report.html.j2", nav="reports", month=month, report=None)
        days = list(report.data.days)
        strips = [(u.utm_id, [(s.start, s.end, s.status) for s in u.segments]) for u in report.utms]
        return self.render(
            viewer, "report.html.j2", nav="reports", month=month, report=report,
            detections_chart=charts.daily_chart(days, report.detections_by_day, report.peer_by_day, "日別の検知数"),
            availability_chart=charts.availability_strip(strips, report.data.start, report.data.end, self.tz),
            partial_month=report.data.end < report.data.start + timedelta(days=len(month.days())))

    # -- operations ------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        try:
            await self.db(self.store.query, "SELECT 1 AS ok")
        except StoreError as exc:
            reason = "store unreachable" if isinstance(exc, StoreUnavailable) else "store query failed"
            return _json_response(503, {"status": "failing", "reason": reason})
        return _json_response(200, {"status": "ok"})

    async def metrics_page(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def stylesheet(self, request: Request) -> Response:
        return Response((TEMPLATES / "portal" / "portal.css").read_bytes(), media_type="text/css",
                        headers={"Cache-Control": "public, max-age=3600"})


def _json_response(status: int, body: dict[str, Any]) -> Response:
    import orjson

    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _next_page(step: str) -> str:
    return {ses.NEED_TOTP: "/login/totp", ses.NEED_CREDENTIALS: "/setup", ses.NEED_DECISION: "/setup/totp"}.get(step, "/")


def _overall(open_by_grade: dict[int, int], offline: int, utms: int) -> dict[str, str]:
    if open_by_grade.get(3):
        return {"level": "danger", "text": "要対応：感染の可能性が高い端末があります"}
    if offline:
        return {"level": "warning", "text": f"注意：停止しているUTMがあります（{offline}台/{utms}台）"}
    if open_by_grade.get(2):
        return {"level": "warning", "text": "注意：感染の可能性がある端末があります"}
    return {"level": "ok", "text": "良好：対応が必要な問題は見つかっていません"}


def _safe_text(value: Any, limit: int = 200) -> str:
    """Text that came from events: one line, bounded, links and domains defanged (escaped by jinja2)."""
    return defang(one_line(str(value), limit)) if value not in (None, "") else "-"


def _plain(value: Any, limit: int = 200) -> str:
    """An address or id from events: one line, bounded (escaped by jinja2); nothing to defang."""
    return one_line(str(value), limit) if value not in (None, "") else "-"


def _link_text(value: Any, limit: int = 200) -> str:
    """Free text (an alert's title): links inside defanged, the rest readable."""
    return defang_links(one_line(str(value), limit)) if value not in (None, "") else "-"


def _num(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, (int, float)) else str(value)


def build_app(portal: Portal) -> Starlette:
    def page(build: Callable[[Viewer, acc.Account, Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            return await portal.page(request, build)
        return handler

    routes = [
        Route("/login", portal.login_page, methods=["GET"]),
        Route("/login", portal.login, methods=["POST"]),
        Route("/login/totp", portal.totp_page, methods=["GET"]),
        Route("/login/totp", portal.totp, methods=["POST"]),
        Route("/setup", portal.setup_page, methods=["GET"]),
        Route("/setup", portal.setup, methods=["POST"]),
        Route("/setup/totp", portal.totp_setup_page, methods=["GET"]),
        Route("/setup/totp", portal.totp_setup, methods=["POST"]),
        Route("/logout", portal.logout, methods=["POST"]),
        Route("/", page(portal.summary), methods=["GET"]),
        Route("/alerts/{alert_id}", page(portal.alert), methods=["GET"]),
        Route("/detections", page(portal.detections), methods=["GET"]),
        Route("/utms", page(portal.utms), methods=["GET"]),
        Route("/utms/{utm_id}", page(portal.utm), methods=["GET"]),
        Route("/compare", page(portal.compare), methods=["GET"]),
        Route("/compare/utms", page(portal.compare_utms), methods=["GET"]),
        Route("/usage", page(portal.usage), methods=["GET"]),
        Route("/notices", page(portal.notices), methods=["GET"]),
        Route("/reports", page(portal.reports), methods=["GET"]),
        Route("/reports/{report_id}", page(portal.report), methods=["GET"]),
        Route("/health", portal.health, methods=["GET"]),
        Route("/metrics", portal.metrics_page, methods=["GET"]),
        Route("/static/portal.css", portal.stylesheet, methods=["GET"]),
    ]
    async def around(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        route = _route_of(app, request)
        try:
            response = await call_next(request)
        except StoreError:
            log.warning("portal: the store could not answer %s", route)
            response = PlainTextResponse("ただいま表示できません。しばらくしてから再度お試しください。", status_code=503,
                                         headers={"Retry-After": "5"})
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        portal.metrics.requests.labels(route, str(response.status_code)).inc()
        portal.metrics.seconds.labels(route).observe(time.perf_counter() - started)
        return response

    app = Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=around)])
    return app


def _route_of(app: Starlette, request: Request) -> str:
    from starlette.routing import Match

    for route in app.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return getattr(route, "path", "other")
    return "other"
