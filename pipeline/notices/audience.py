"""Which tenants a notice concerns, from the registry (pure)."""
from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Iterable

from pipeline.models import Registry, Tenant, Utm
from pipeline.notices.model import Audience


def utm_matches(audience: Audience, utm: Utm) -> bool:
    if not utm.active or not (audience.models or audience.firmware):
        return False
    return ((not audience.models or utm.model in audience.models)
            and (not audience.firmware or utm.firmware in audience.firmware))


def concerned_tenants(audience: Audience, registry: Registry, day: date) -> list[Tenant]:
    """The tenants serviced on `day` (active, within their contract) that the audience names, by id."""
    if audience.all:
        chosen: Iterable[Tenant] = registry.tenants.values()
    elif audience.tenants:
        chosen = (registry.tenants[t] for t in audience.tenants if t in registry.tenants)
    else:
        by_tenant: dict[str, list[Utm]] = defaultdict(list)
        for utm in registry.utms.values():
            by_tenant[utm.tenant_id].append(utm)
        chosen = (registry.tenants[t] for t, utms in by_tenant.items()
                  if t in registry.tenants and any(utm_matches(audience, u) for u in utms))
    return sorted((t for t in chosen if t.is_serviced_on(day)), key=lambda t: t.tenant_id)
