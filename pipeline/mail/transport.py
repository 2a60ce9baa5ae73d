"""Deliver a rendered mail: SMTP (plain, STARTTLS or TLS, with login) or a maildir directory."""
from __future__ import annotations

import hashlib
import os
import smtplib
import ssl
from email.utils import parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from pipeline.models import Mail


class MailError(Exception):
    pass


class TransientMailError(MailError):
    """Try again later: the server is unreachable or answered 4xx."""


class PermanentMailError(MailError):
    """The server refused the mail for good (5xx on every recipient); retrying will not help."""


class MailTransport(Protocol):
    def send(self, mail: Mail) -> None: ...

    def close(self) -> None: ...


def envelope_sender(mail: Mail) -> str:
    for line in mail.raw.splitlines():
        if not line:
            break
        if line.lower().startswith("from:"):
            return parseaddr(line[5:].strip())[1]
    return ""


class SmtpTransport:
    """One connection, opened on first use and reopened after a failure."""

    def __init__(
        self, host: str, port: int, *, tls: bool = False, starttls: bool = False, user: str | None = None,
        password: str | None = None, timeout: float = 30.0, ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.tls, self.starttls = host, port, tls, starttls
        self.user, self.password, self.timeout = user, password, timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        self._client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        client: smtplib.SMTP
        if self.tls:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.ssl_context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            client.ehlo()
            if self.starttls:
                client.starttls(context=self.ssl_context)
                client.ehlo()
            if self.user:
                client.login(self.user, self.password or "")
        except BaseException:
            _quietly_close(client)
            raise
        return client

    def send(self, mail: Mail) -> None:
        """Never re-sends on its own after DATA may have started: a failure is raised, the caller retries."""
        try:
            client = self._ready_client()
            client.sendmail(envelope_sender(mail), list(mail.to), mail.raw.encode("utf-8"))
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise _classify(exc) from exc

    def _ready_client(self) -> smtplib.SMTP:
        if self._client is not None:
            try:
                self._client.noop()
                return self._client
            except (smtplib.SMTPException, OSError):
                self.close()
        self._client = self._connect()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            _quietly_close(self._client)
            self._client = None


def _quietly_close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _classify(exc: BaseException) -> MailError:
    if isinstance(exc, MailError):
        return exc
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        permanent = bool(codes) and all(500 <= code < 600 for code in codes)
        return (PermanentMailError if permanent else TransientMailError)(f"recipients refused: {exc.recipients}")
    if isinstance(exc, smtplib.SMTPResponseException) and 500 <= exc.smtp_code < 600:
        return PermanentMailError(f"{exc.smtp_code} {exc.smtp_error!r}")
    return TransientMailError(f"{type(exc).__name__}: {exc}")


class MaildirTransport:
    """Writes each mail once into PATH/new (via PATH/tmp); its file name comes from the Message-ID."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def file_name(mail: Mail) -> str:
        return "mimamori." + hashlib.blake2b(mail.message_id.encode(), digest_size=16).hexdigest()

    def holds(self, name: str) -> bool:
        return (self.path / "new" / name).exists() or any((self.path / "cur").glob(name + ":*"))

    def send(self, mail: Mail) -> None:
        try:
            for folder in ("tmp", "new", "cur"):
                (self.path / folder).mkdir(parents=True, exist_ok=True)
            name = self.file_name(mail)
            if self.holds(name):
                return
            staged = self.path / "tmp" / f"{name}.{os.getpid()}"
            with open(staged, "wb") as handle:
                handle.write(mail.raw.replace("\r\n", "\n").encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(staged, self.path / "new" / name)
            except FileExistsError:
                pass
            finally:
                staged.unlink(missing_ok=True)
        except OSError as exc:
            raise TransientMailError(f"maildir {self.path}: {exc}") from exc

    def close(self) -> None:
        pass


def open_transport(url: str, timeout: float = 30.0, ssl_context: ssl.SSLContext | None = None) -> MailTransport:
    """`smtp://[USER:PASS@]HOST:PORT[?starttls=1]`, `smtps://...`, `maildir:///PATH` or `maildir://./PATH`."""
    if url.startswith("maildir://"):
        path = url[len("maildir://"):]
        if not path:
            raise ValueError(f"maildir URL without a path: {url!r}")
        return MaildirTransport(Path(path))
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"expected smtp://HOST:PORT, smtps://HOST:PORT or maildir:///PATH, got {url!r}")
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["0"])[-1].lower() in ("1", "true", "yes")
    tls = parts.scheme == "smtps"
    return SmtpTransport(
        parts.hostname, parts.port or (465 if tls else 25), tls=tls, starttls=starttls and not tls,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None, timeout=timeout,
        ssl_context=ssl_context,
    )
