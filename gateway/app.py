"""The gateway's HTTP application (Starlette): `POST /v1/events`, `POST /v1/heartbeats`, `/health`,
`/metrics`. An upload is answered 202 only after the broker acknowledged every record it took."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Callable

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.backpressure import Admission, BrokerHealth
from gateway.body import BodyError, decode_body, split_records
from gateway.broker import Follower, Producer, until_started
from gateway.checks import EVENTS, HEARTBEATS, check_upload
from gateway.credentials import AuthFailure, CredentialState, bearer_token, verify
from gateway.metrics import GatewayMetrics
from pipeline.config import Settings
from pipeline.ingest import EventValidator
from pipeline.io.kafka_admin import ensure_topics, topic_specs
from pipeline.io.kafka_security import kafka_python_options
from pipeline.models import Registry

log = logging.getLogger("mimamori.gateway")

IN_FLIGHT_BODIES = 16
"""Bodies of the largest size (MIMAMORI_GATEWAY_MAX_BODY) one gateway holds at once, at least 64 MiB:
each upload is charged its Content-Length (the largest size when gzipped or undeclared, since its
decoded size is unknown), and one that does not fit is answered 429. This bounds the memory."""


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


class Gateway:
    def __init__(self, settings: Settings, *, in_flight_bytes: int | None = None,
                 clock: Callable[[], float] = time.time, create_topics: bool = True) -> None:
        if not settings.gateway_key:
            raise ValueError("MIMAMORI_GATEWAY_KEY is not set")
        self.settings = settings
        self.key = settings.gateway_key
        self.clock = clock
        self.create_topics = create_topics
        self.registry = Registry(tenants={}, utms={})
        self.credentials: dict[str, CredentialState] = {}
        self.follower = Follower(settings, self.registry, self.credentials)
        self.producer = Producer(settings)
        self.admission = Admission(in_flight_bytes or max(64 << 20, IN_FLIGHT_BODIES * settings.gateway_max_body))
        self.broker = BrokerHealth()
        self.producer_error: str | None = None
        self.last_upload: dict[str, float] = {}
        self.metrics = GatewayMetrics(self.last_upload, clock=clock)
        self.tasks: list[asyncio.Task[None]] = []
        self.restarting: asyncio.Task[None] | None = None
        self.warned_at = float("-inf")
        self.ack_timeout = settings.gateway_ack_timeout.total_seconds()
        self.topics = {EVENTS: settings.topics.events, HEARTBEATS: settings.topics.heartbeats}

    @property
    def ready(self) -> bool:
        return self.follower.ready.is_set() and self.producer.started

    async def start(self) -> None:
        if self.create_topics:
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: ensure_topics(self.settings.kafka, topic_specs(self.settings.topics),
                                      options=kafka_python_options(self.settings)))
        self.tasks = [asyncio.create_task(self.follower.run(), name="gateway-follower"),
                      asyncio.create_task(self._start_producer(), name="gateway-producer")]

    async def _start_producer(self) -> None:
        await until_started(self.producer, self._producer_failed)
        self.producer_error = None

    def _producer_failed(self, error: str) -> None:
        self.producer_error = error
        log.warning("gateway: cannot reach the broker yet (%s); again in 2 s", error)

    def _restart_producer(self) -> None:
        if self.restarting is None or self.restarting.done():
            self.restarting = asyncio.create_task(self._replace_producer(), name="gateway-producer-restart")
            self.tasks.append(self.restarting)

    async def _replace_producer(self) -> None:
        log.warning("gateway: the producer is replaced (a failed delivery may have left its sequence broken)")
        await self.producer.discard()
        await self._start_producer()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.producer.stop()

    # -- uploads ---------------------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        return await self.upload(request, EVENTS)

    async def heartbeats(self, request: Request) -> Response:
        return await self.upload(request, HEARTBEATS)

    async def upload(self, request: Request, kind: str) -> Response:
        started = time.monotonic()
        self.metrics.in_flight.inc()
        try:
            response = await self._upload(request, kind, started)
        finally:
            self.metrics.in_flight.dec()
        self.metrics.requests.labels(kind, str(response.status_code)).inc()
        return response

    async def _upload(self, request: Request, kind: str, started: float) -> Response:
        if not self.ready:
            return _json(503, {"error": "starting", "detail": "the gateway has not read the registry or reached "
                                                              "the broker yet"}, {"Retry-After": "2"})
        now = datetime.fromtimestamp(self.clock(), timezone.utc)
        token = bearer_token(request.headers.get("authorization"))
        who = verify(token, self.key, self.credentials, now)
        if isinstance(who, AuthFailure) and who.reason == "revoked" and await self.follower.catch_up():
            who = verify(token, self.key, self.credentials, now)
        if isinstance(who, AuthFailure):
            self.metrics.auth_failures.labels(who.reason).inc()
            return _json(401, {"error": "unauthorized", "detail": "no valid token for a UTM"},
                         {"WWW-Authenticate": 'Bearer realm="mimamori"'})
        charge = _charge(request, self.settings.gateway_max_body)
        if not self.admission.take(charge):
            return _json(429, {"error": "busy", "detail": "too many uploads at once"}, {"Retry-After": "1"})
        try:
            return await self._take(request, kind, who.utm_id, now, started)
        finally:
            self.admission.release(charge)

    async def _take(self, request: Request, kind: str, utm_id: str, now: datetime, started: float) -> Response:
        limit = self.settings.gateway_max_body
        try:
            raw = await _read_limited(request, limit)
            records = split_records(decode_body(raw, request.headers.get("content-encoding"), limit))
        except BodyError as exc:
            return _json(exc.status, {"error": exc.error, "detail": exc.detail})
        if EventValidator(self.registry).registry_refusal(utm_id) is not None:
            await self.follower.catch_up()
        checked = check_upload(records, utm_id, kind, self.registry, now, self.topics[kind])
        if checked.accepted or checked.rejections:
            if not self.broker.admit():
                return self._unavailable("the broker does not acknowledge")
            sent = time.monotonic()
            try:
                await asyncio.wait_for(self._send(utm_id, kind, checked.accepted, checked.rejections), self.ack_timeout)
            except Exception as exc:  # noqa: BLE001 - any failure to get the acknowledgement is a 503: retry
                self.broker.failed(time.monotonic(), type(exc).__name__)
                if not isinstance(exc, asyncio.TimeoutError):
                    self._restart_producer()
                self.metrics.broker_up.set(0)
                if time.monotonic() - self.warned_at >= 10:  # one line per 10 s while the broker is down
                    self.warned_at = time.monotonic()
                    log.warning("gateway: no acknowledgement from the broker (%s) for an upload of %s; answered 503 "
                                "(further ones within 10 s not logged)", type(exc).__name__, utm_id)
                return self._unavailable("the broker did not acknowledge in time")
            if not self.broker.up:
                log.info("gateway: the broker acknowledges again")
            self.broker.acknowledged()
            self.metrics.broker_up.set(1)
            self.metrics.ack_seconds.observe(time.monotonic() - sent)
        self.metrics.records.labels(kind, "accepted").inc(len(checked.accepted))
        if checked.refused:
            self.metrics.records.labels(kind, "refused").inc(len(checked.refused))
            for refusal in checked.refused:
                self.metrics.refusals.labels(refusal["reason"]).inc()
        if checked.accepted:
            self.last_upload[utm_id] = self.clock()
        self.metrics.request_seconds.observe(time.monotonic() - started)
        return _json(202, {"accepted": len(checked.accepted), "refused": checked.refused})

    async def _send(self, utm_id: str, kind: str, accepted: list[bytes], rejections: list[bytes]) -> None:
        key = utm_id.encode("utf-8")
        await asyncio.gather(self.producer.send_all(self.topics[kind], key, accepted),
                             self.producer.send_all(self.settings.topics.rejected, key, rejections))

    def _unavailable(self, detail: str) -> Response:
        retry = self.broker.retry_after(time.monotonic())
        return _json(503, {"error": "unavailable", "detail": detail}, {"Retry-After": str(retry)})

    # -- operations ------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        problems = []
        if not self.follower.ready.is_set():
            problems.append("registry: not read yet")
        if self.follower.failing:
            problems.append("registry: following fails")  # reasons, not exception text: details in the log
        if not self.producer.started:
            problems.append("broker: not reached yet")
        elif not self.broker.up:
            problems.append("broker: no acknowledgement")
        body = {"status": "failing" if problems else "ok", "problems": problems,
                "registry": {"tenants": len(self.registry.tenants), "utms": len(self.registry.utms),
                             "credential_states": len(self.credentials)},
                "bytes_in_flight": self.admission.in_flight}
        return _json(503 if problems else 200, body)

    async def metrics_page(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _charge(request: Request, limit: int) -> int:
    """What an upload may take in memory: its declared length, or the limit when gzipped or undeclared."""
    declared = request.headers.get("content-length", "")
    encoding = (request.headers.get("content-encoding") or "identity").strip().lower()
    if encoding in ("", "identity") and declared.isdigit():
        return min(int(declared), limit)
    return limit


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyError(413, "too_large", f"the body is {declared} bytes, the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, "too_large", f"the body is above the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(gateway: Gateway) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    return Starlette(routes=[
        Route("/v1/events", gateway.events, methods=["POST"]),
        Route("/v1/heartbeats", gateway.heartbeats, methods=["POST"]),
        Route("/health", gateway.health, methods=["GET"]),
        Route("/metrics", gateway.metrics_page, methods=["GET"]),
    ], lifespan=lifespan)
