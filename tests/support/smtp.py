"""A real SMTP server (aiosmtpd) that answers RCPT TO as a customer's mail system might: deferring
some addresses for a while (greylisting, a full mailbox), refusing others, slow for some domains."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from tests.support.services import SmtpSink


@dataclass
class PickySink(SmtpSink):
    deferred_until: dict[str, float] = field(default_factory=dict)
    """address -> time.time() until which its RCPT TO is answered 450."""
    refused: set[str] = field(default_factory=set)
    """addresses answered 550."""
    slow_domains: dict[str, float] = field(default_factory=dict)
    """domain -> seconds each RCPT TO to it takes."""
    answers: list[tuple[float, str, int]] = field(default_factory=list)
    """(time.time(), address, code) of every RCPT TO."""
    sessions: set[int] = field(default_factory=set)
    """Connections that sent at least one RCPT TO."""

    def defer(self, address: str, seconds: float) -> None:
        with self._lock:
            self.deferred_until[address] = time.time() + seconds

    async def handle_RCPT(self, server: object, session: object, envelope: object, address: str,
                          rcpt_options: list[str]) -> str:
        delay = self.slow_domains.get(address.rpartition("@")[2].lower(), 0.0)
        if delay:
            await asyncio.sleep(delay)
        with self._lock:
            self.sessions.add(id(session))
            if address in self.refused:
                code, reply = 550, "550 5.1.1 no such user"
            elif self.deferred_until.get(address, 0.0) > time.time():
                code, reply = 450, "450 4.2.0 mailbox busy, try again later"
            else:
                code, reply = 250, "250 OK"
            self.answers.append((time.time(), address, code))
        if code == 250:
            envelope.rcpt_tos.append(address)  # type: ignore[attr-defined]
            envelope.rcpt_options.extend(rcpt_options)  # type: ignore[attr-defined]
        return reply

    def answered(self, address: str, code: int | None = None) -> list[float]:
        """When RCPT TO `address` was answered (with `code`, when given)."""
        with self._lock:
            return [at for at, a, c in self.answers if a == address and (code is None or c == code)]

    def deliveries_to(self, address: str) -> list[str]:
        """The Message-IDs of the messages whose envelope named `address`, in arrival order."""
        with self._lock:
            return [str(m["Message-ID"]) for m, (_, rcpts) in zip(self.messages, self.envelopes) if address in rcpts]
