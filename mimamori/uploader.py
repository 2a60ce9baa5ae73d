"""A UTM's side of the HTTPS upload, for the simulator and the demo: lines grouped by UTM, sent in
requests of up to 100 records with the UTM's token, retried on 429/503 (after `Retry-After`) and
on timeouts (a resend is safe: dedup drops what arrived twice)."""
from __future__ import annotations

import gzip
import http.client
import re
import ssl
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable
from urllib.parse import urlsplit

import orjson

_UTM_ID = re.compile(rb'"utm_id"\s*:\s*"([^"\\]{1,200})"')
RETRIED = (429, 502, 503, 504)


@dataclass
class Answer:
    status: int
    body: dict[str, object]
    retry_after: float | None = None


class GatewayClient:
    """One keep-alive connection (not thread-safe: one per thread)."""

    def __init__(self, url: str, *, ca_file: str | None = None, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"expected a gateway URL such as https://host:8443, got {url!r}")
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base = parts.path.rstrip("/")
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca_file) if parts.scheme == "https" else None
        self.connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self.connection is None:
            if self.context is not None:
                self.connection = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                              context=self.context)
            else:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def post(self, path: str, token: str | None, body: bytes, *, compress: bool = False,
             content_type: str = "application/x-ndjson") -> Answer:
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if compress:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        connection = self._connect()
        try:
            connection.request("POST", self.base + path, body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except BaseException:
            self.close()
            raise
        if response.getheader("connection", "").lower() == "close":
            self.close()
        retry = response.getheader("retry-after")
        try:
            parsed = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            parsed = {"error": raw[:200].decode(errors="replace")}
        return Answer(response.status, parsed if isinstance(parsed, dict) else {"answer": parsed},
                      float(retry) if retry and retry.isdigit() else None)


def record_utm(line: bytes) -> str | None:
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("utm_id"), str):
        return data["utm_id"]
    found = _UTM_ID.search(line)
    return found.group(1).decode(errors="replace") if found else None


def record_kind(line: bytes) -> str:
    """`events` for a line with a `type` key (what `mimamori produce` and replay decide), else `heartbeats`."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "events" if b'"type"' in line else "heartbeats"
    return "events" if not isinstance(data, dict) or "type" in data else "heartbeats"


@dataclass
class UploadReport:
    lines: int = 0
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    retries: int = 0
    unattributed: int = 0
    failures: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    """Every answer's status, retried ones included (0: no answer)."""
    taken: list[tuple[str, str, bytes]] = field(default_factory=list)
    """(utm_id, kind, record) of each record a 202 accepted."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def summary(self) -> str:
        refused = ", ".join(f"{r} {n}" for r, n in sorted(self.refused.items())) or "none"
        return (f"uploaded {self.accepted} of {self.lines} lines in {self.requests} requests ({self.retries} retried); "
                f"refused: {refused}" + (f"; {self.unattributed} lines of no UTM not sent" if self.unattributed else "")
                + (f"; {len(self.failures)} uploads failed" if self.failures else ""))


def upload_batches(lines: Iterable[bytes], batch: int = 100) -> dict[str, list[tuple[str, list[bytes]]]]:
    """Per UTM, in the order of the lines, its requests: (endpoint kind, up to `batch` records of one kind)."""
    out: dict[str, list[tuple[str, list[bytes]]]] = {}
    for line in lines:
        utm_id = record_utm(line)
        if utm_id is None:
            out.setdefault("", []).append(("events", [line]))
            continue
        requests = out.setdefault(utm_id, [])
        kind = record_kind(line)
        if requests and requests[-1][0] == kind and len(requests[-1][1]) < batch:
            requests[-1][1].append(line)
        else:
            requests.append((kind, [line]))
    return out


def send_with_retries(client: GatewayClient, kind: str, token: str, records: list[bytes], *,
                      deadline: float, report: UploadReport | None = None,
                      sleep: Callable[[float], None] = time.sleep) -> Answer:
    """POST one request until it is answered for good (202, 4xx other than 429) or the deadline passes."""
    body = b"\n".join(records) + b"\n"
    attempt = 0
    while True:
        try:
            answer = client.post(f"/v1/{kind}", token, body, compress=len(body) > 4096)
        except (OSError, http.client.HTTPException) as exc:
            answer = Answer(0, {"error": type(exc).__name__})
        if report is not None:
            with report.lock:
                report.requests += 1
                report.statuses[answer.status] += 1
        if answer.status not in RETRIED and answer.status != 0:
            return answer
        attempt += 1
        if time.monotonic() > deadline:
            return answer
        if report is not None:
            with report.lock:
                report.retries += 1
        sleep(min(answer.retry_after or 0.2 * 2 ** min(attempt, 5), 10.0))


def upload_lines(url: str | list[str], tokens: dict[str, str], lines: list[bytes], *, ca_file: str | None = None,
                 threads: int = 8, batch: int = 100, give_up_after: float = 300.0) -> UploadReport:
    """Send every line through the gateway: each UTM's requests in order, UTMs in parallel. With
    several URLs (gateway replicas), the UTMs are spread over them."""
    urls = [url] if isinstance(url, str) else url
    report = UploadReport(lines=len(lines))
    per_utm = upload_batches(lines, batch)
    report.unattributed = sum(len(r) for _, r in per_utm.pop("", []))
    deadline = time.monotonic() + give_up_after
    local = threading.local()

    def one_utm(number: int, utm_id: str) -> None:
        target = urls[number % len(urls)]
        clients = local.__dict__.setdefault("clients", {})
        client = clients.get(target) or clients.setdefault(target, GatewayClient(target, ca_file=ca_file))
        for kind, records in per_utm[utm_id]:
            answer = send_with_retries(client, kind, tokens[utm_id], records, deadline=deadline, report=report)
            with report.lock:
                if answer.status == 202:
                    report.accepted += int(answer.body.get("accepted", 0))  # type: ignore[call-overload]
                    refused = {r["index"] for r in answer.body.get("refused", [])}  # type: ignore[union-attr, index]
                    for refusal in answer.body.get("refused", []):  # type: ignore[union-attr]
                        report.refused[refusal["reason"]] += 1  # type: ignore[index]
                    report.taken += [(utm_id, kind, r) for i, r in enumerate(records) if i not in refused]
                else:
                    report.failures.append(f"{utm_id}: {answer.status} {answer.body.get('error')}")

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(one_utm, n, utm_id) for n, utm_id in enumerate(per_utm)]:
            future.result()
    return report
