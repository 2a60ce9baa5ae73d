"""Service notices (CONTRACT.md, "Service notices"): maintenance, faults and firmware notices as
plain data, their checks, who they concern, their mails and the maintenance windows they declare."""
from pipeline.notices.model import KINDS, LEVELS, Audience, ServiceNotice

__all__ = ["Audience", "KINDS", "LEVELS", "ServiceNotice"]
