"""The UTM status machine (CONTRACT.md, "UTM status"): never_seen -> online <-> offline.

Pure: the clock comes in as `now` (aware UTC). A driver saves `state_of` of each UTM (keyed by its
utm_id) and `monitor_state` once; `load` and `load_monitor_state` rebuild it after a restart.

Online UTMs are kept in two silence schedules: `_online` (heard within half the timeout at the
last check) and `_quiet` (silent longer than that). The mass-outage guard counts the quiet and the
offline ones, so UTMs cut at one moment are counted together half a timeout after the cut, before
any of them crosses the timeout, however their last heartbeats straddle the checks. The other
monitors' counts (`elsewhere`, other partitions) come with the time they hold for: no UTM is taken
offline for a moment the whole fleet has not counted yet (pipeline/heartbeat/fleet.py).
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

from pipeline.heartbeat.fleet import NOWHERE, Share
from pipeline.heartbeat.notices import Incident, MonitorResult, Notice
from pipeline.heartbeat.schedule import SilenceSchedule
from pipeline.heartbeat.state import NEVER_SEEN, OFFLINE, ONLINE, UtmState, second_of
from pipeline.models import Registry, UtmStatusChange, iso, parse_time
from pipeline.notices.windows import MaintenanceWindow, silenced

Mailable = Callable[[str, str, date], bool]
"""(utm_id, tenant_id, local day) -> may this UTM's tenant be mailed about it that day."""


def registry_mailable(registry: Registry) -> Mailable:
    """Mailable while the UTM and its tenant are active and the day is within the contract.

    Reads the registry at each call, so later registry updates count.
    """
    def mailable(utm_id: str, tenant_id: str, day: date) -> bool:
        utm = registry.utms.get(utm_id)
        if utm is None or not utm.active:
            return False
        tenant = registry.tenants.get(utm.tenant_id)
        return tenant is not None and tenant.is_serviced_on(day)
    return mailable


class UtmMonitor:
    def __init__(
        self, *, timeout: timedelta, daily_at: time, tz: ZoneInfo, started_at: datetime,
        mailable: Mailable, mass_outage_share: float = 0.2, mass_outage_min: int = 10,
        windows: Callable[[], Iterable[MaintenanceWindow]] = tuple,
        elsewhere: Callable[[], Share] = lambda: NOWHERE,
    ) -> None:
        """`windows`: the declared maintenance windows now; during one and for `timeout` after it,
        no silence is judged a stop (a UTM already offline stays so, and its reminders go on).
        `elsewhere`: the share of the UTMs that other monitors watch (other partitions, here and
        on other workers), so the mass-outage guard judges the whole fleet: no UTM goes offline
        for time beyond its `counted_until`, and a mass outage ends only once every count is."""
        self.timeout = timeout
        self.daily_at = daily_at
        self.tz = tz
        self.started_at = started_at
        self.grace_until = started_at + timeout
        self._mailable = mailable
        self._windows = windows
        self._elsewhere = elsewhere
        self._share = mass_outage_share
        self._min = mass_outage_min
        self._utms: dict[str, UtmState] = {}
        self._online = SilenceSchedule()
        self._quiet = SilenceSchedule()
        self._offline: dict[str, None] = {}
        self._lived: dict[str, None] = {}  # UTMs with a sign of life since the last check
        self.last_daily_check: date | None = self._last_daily_day_before(started_at)
        self.mass_outage_since: datetime | None = None
        self.counted_until: datetime | None = None
        """Up to when `silent_count` counts every UTM silent for more than half the timeout (the
        time the last check measured silence up to); None before a check that could count them."""

    @property
    def mass_outage(self) -> bool:
        return self.mass_outage_since is not None

    @property
    def seen_count(self) -> int:
        return len(self._utms)

    @property
    def offline_count(self) -> int:
        return len(self._offline)

    @property
    def silent_count(self) -> int:
        """UTMs silent for more than half the timeout at the last check, offline ones included."""
        return len(self._quiet) + len(self._offline)

    def silence_by(self, group: Callable[[str], Any]) -> dict[Any, tuple[int, int]]:
        """(silent, seen) per group of UTMs as of the last check, for monitors elsewhere."""
        counts: dict[Any, list[int]] = {}
        for utm_id, state in self._utms.items():
            entry = counts.setdefault(group(utm_id), [0, 0])
            entry[1] += 1
            if state.quiet or state.status == OFFLINE:
                entry[0] += 1
        return {key: (silent, seen) for key, (silent, seen) in counts.items()}

    def status_of(self, utm_id: str) -> str:
        state = self._utms.get(utm_id)
        return state.status if state else NEVER_SEEN

    def sign_of_life(self, utm_id: str, tenant_id: str, now: datetime) -> MonitorResult:
        """A heartbeat or an accepted event, `now` being when it arrived."""
        return self.alive(utm_id, tenant_id, now) or MonitorResult()

    def alive(self, utm_id: str, tenant_id: str, now: datetime) -> MonitorResult | None:
        """`sign_of_life`, None when nothing came of it: the common case (a UTM online already)
        makes no result (making one for every event was 5% of the detect step)."""
        self._lived[utm_id] = None
        state = self._utms.get(utm_id)
        if state is None:
            state = self._utms[utm_id] = UtmState(tenant_id, ONLINE, now, second=second_of(now))
            self._online.add(utm_id, state.second)
            return MonitorResult(status_changes=[self._change(utm_id, state, now)])
        state.tenant_id = tenant_id
        if state.status == ONLINE:
            if now > state.last_seen:
                self._schedule_of(state).remove(utm_id, state.second)
                state.last_seen, state.second, state.quiet = now, second_of(now), False
                self._online.add(utm_id, state.second)
            return None
        result = MonitorResult()
        result.notices.append(self._recovery_notice(utm_id, state, now))
        del self._offline[utm_id]
        state.status, state.offline_since = ONLINE, None
        state.down_mailed = state.down_pending = False
        state.reminded_on = None
        if now > state.last_seen:
            state.last_seen = now
        state.second, state.quiet = second_of(state.last_seen), False
        self._online.add(utm_id, state.second)
        result.status_changes.append(self._change(utm_id, state, now))
        return result

    def check(self, now: datetime, read_until: datetime | None = None) -> MonitorResult:
        """Run once a minute: the mass-outage guard, timeouts, the daily reminder. Silence is
        measured up to `read_until` only, the time up to which the driver has read its input (our
        own lag is never a customer's stop); None when it has read everything up to `now`."""
        result = MonitorResult()
        day = now.astimezone(self.tz).date()
        # each UTM's last sign of life, once per check, for the portal's last_seen
        result.signs_of_life = [(utm_id, state.tenant_id, state.last_seen) for utm_id in self._lived
                                if (state := self._utms.get(utm_id)) is not None]
        self._lived = {}
        heard = now if read_until is None else min(now, read_until)
        self._take_quiet(heard)
        self.counted_until = heard if heard - self.started_at > self.timeout / 2 else None
        fleet = self._elsewhere()
        # a maintenance window (and one timeout after it) is our own pause: no silence is judged a
        # stop, and no mass outage starts (one already declared may end)
        paused = silenced(now, self._windows(), self.timeout)
        outage_ended = self._judge_mass_outage(now, fleet, result) if self.mass_outage or not paused else False
        # silence judged only up to when the whole fleet has counted its own: before that, the
        # guard may not know yet of an outage that takes this UTM too
        judged = None if fleet.counted_until is None else min(heard, fleet.counted_until)
        newly_offline = (self._take_silent(now, judged, result)
                         if judged is not None and now >= self.grace_until and not paused else [])
        for utm_id in newly_offline:
            state = self._utms[utm_id]
            if self.mass_outage:
                state.down_pending = True
            result.notices.append(self._down_notice(utm_id, state, now, day))
        if outage_ended:
            for utm_id in self._offline:
                state = self._utms[utm_id]
                if state.down_pending:
                    state.down_pending = False
                    result.notices.append(self._down_notice(utm_id, state, now, day))
        # the daily check too, once the moment is judged: a UTM back just before it, whose sign of
        # life is not read yet here, or an outage the fleet has not counted yet, gets no reminder
        if judged is not None and judged >= self.started_at:
            judged_day = judged.astimezone(self.tz).date()
            if self._daily_check_due(judged, judged_day):
                self.last_daily_check = judged_day
                for utm_id in self._offline:
                    state = self._utms[utm_id]
                    if state.reminded_on != judged_day:
                        state.reminded_on = judged_day
                        result.notices.append(self._reminder(utm_id, state, now, judged_day))
        return result

    def forget(self, utm_id: str) -> None:
        """The UTM left the registry, or it or its tenant became inactive."""
        state = self._utms.pop(utm_id, None)
        self._lived.pop(utm_id, None)
        if state is None:
            return
        if state.status == ONLINE:
            self._schedule_of(state).remove(utm_id, state.second)
        else:
            del self._offline[utm_id]

    def forget_unless(self, keep: Callable[[str], bool]) -> list[str]:
        """Forget every UTM `keep` refuses (gone from the registry, or it or its tenant inactive):
        it neither counts toward a mass outage nor is judged any more. Returns those forgotten."""
        gone = [utm_id for utm_id in self._utms if not keep(utm_id)]
        for utm_id in gone:
            self.forget(utm_id)
        return gone

    def state_of(self, utm_id: str) -> dict[str, Any] | None:
        state = self._utms.get(utm_id)
        return state.to_json() if state else None

    def load(self, utm_id: str, saved: dict[str, Any]) -> None:
        self.forget(utm_id)
        state = self._utms[utm_id] = UtmState.from_json(saved)
        if state.status == ONLINE:
            self._online.add(utm_id, state.second)
        else:
            self._offline[utm_id] = None

    def monitor_state(self) -> dict[str, Any]:
        return {"last_daily_check": iso(self.last_daily_check), "mass_outage_since": iso(self.mass_outage_since)}

    def load_monitor_state(self, saved: dict[str, Any]) -> None:
        last = saved.get("last_daily_check")
        since = saved.get("mass_outage_since")
        self.last_daily_check = date.fromisoformat(last) if last else None
        self.mass_outage_since = parse_time(since) if since else None

    def _schedule_of(self, state: UtmState) -> SilenceSchedule:
        return self._quiet if state.quiet else self._online

    def _take_quiet(self, now: datetime) -> None:
        """Move the online UTMs silent for more than half the timeout to the quiet schedule. As
        with the start-up grace, silence counts from the start at the earliest: before it we were
        not listening (a restart after our own pause is no outage of the UTMs)."""
        if now - self.started_at <= self.timeout / 2:
            return
        cutoff = now - self.timeout / 2
        for utm_id in self._online.take_silent(cutoff.timestamp(), lambda u: self._utms[u].last_seen < cutoff):
            state = self._utms[utm_id]
            state.quiet = True
            self._quiet.add(utm_id, state.second)

    def _take_silent(self, now: datetime, heard: datetime, result: MonitorResult) -> list[str]:
        cutoff = heard - self.timeout
        silent = self._quiet.take_silent(cutoff.timestamp(), lambda u: self._utms[u].last_seen < cutoff)
        for utm_id in silent:
            state = self._utms[utm_id]
            state.status, state.offline_since, state.quiet = OFFLINE, now, False
            state.down_mailed = state.down_pending = False
            state.reminded_on = None
            self._offline[utm_id] = None
            result.status_changes.append(self._change(utm_id, state, now))
        return silent

    def _judge_mass_outage(self, now: datetime, fleet: Share, result: MonitorResult) -> bool:
        """Update the guard; True when an outage ended in this check. An outage starts on counts as
        they are, but ends only on counts that are all true for a time (a monitor that has not
        counted yet, after a restart or a takeover, counts no quiet UTM: it would end it falsely)."""
        silent = self.silent_count + fleet.silent
        holds = silent >= self._min and silent > self._share * (len(self._utms) + fleet.seen)
        counted = self.counted_until is not None and fleet.counted_until is not None
        if holds and not self.mass_outage:
            self.mass_outage_since = now
            result.incidents.append(Incident("mass_outage", "start", silent, now))
        elif not holds and self.mass_outage and counted:
            self.mass_outage_since = None
            result.incidents.append(Incident("mass_outage", "end", silent, now))
            return True
        return False

    def _last_daily_day_before(self, moment: datetime) -> date:
        """Without saved state, a daily check that fell before the start is not caught up."""
        local = moment.astimezone(self.tz)
        return local.date() if local.time() > self.daily_at else local.date() - timedelta(days=1)

    def _daily_check_due(self, now: datetime, day: date) -> bool:
        if self.last_daily_check is not None and day <= self.last_daily_check:
            return False
        return now.astimezone(self.tz).time() >= self.daily_at

    def _held_back(self, utm_id: str, state: UtmState, day: date) -> str | None:
        if self.mass_outage:
            return "mass_outage"
        if not self._mailable(utm_id, state.tenant_id, day):
            return "not_mailable"
        return None

    def _down_notice(self, utm_id: str, state: UtmState, now: datetime, day: date) -> Notice:
        reason = self._held_back(utm_id, state, day)
        state.down_mailed = reason is None
        return self._notice("utm-down", utm_id, state, now, reason)

    def _reminder(self, utm_id: str, state: UtmState, now: datetime, day: date) -> Notice:
        return self._notice("utm-down-reminder", utm_id, state, now, self._held_back(utm_id, state, day), day)

    def _recovery_notice(self, utm_id: str, state: UtmState, now: datetime) -> Notice:
        """Mailed when the customer was told of the stop, even during a mass outage."""
        if not self._mailable(utm_id, state.tenant_id, now.astimezone(self.tz).date()):
            reason: str | None = "not_mailable"
        elif state.down_mailed:
            reason = None
        else:
            reason = "mass_outage" if state.down_pending else "down_not_mailed"
        return self._notice("utm-recovered", utm_id, state, now, reason)

    @staticmethod
    def _notice(
        kind: str, utm_id: str, state: UtmState, now: datetime, reason: str | None, day: date | None = None,
    ) -> Notice:
        return Notice(kind, utm_id, state.tenant_id, now, state.offline_since, state.last_seen, reason is None, reason, day)

    @staticmethod
    def _change(utm_id: str, state: UtmState, now: datetime) -> UtmStatusChange:
        return UtmStatusChange(utm_id, state.tenant_id, state.status, now, state.last_seen, state.offline_since)
