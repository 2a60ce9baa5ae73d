"""UTM heartbeat status: the pure status machine, its notices and guards (issue 6)."""
from pipeline.heartbeat.fleet import NOWHERE, Share, together
from pipeline.heartbeat.monitor import Mailable, UtmMonitor, registry_mailable
from pipeline.heartbeat.notices import Incident, MonitorResult, Notice
from pipeline.heartbeat.state import NEVER_SEEN, OFFLINE, ONLINE, UtmState

CheckResult = MonitorResult

__all__ = [
    "CheckResult", "Incident", "Mailable", "MonitorResult", "NEVER_SEEN", "NOWHERE", "Notice", "OFFLINE", "ONLINE",
    "Share", "UtmMonitor", "UtmState", "registry_mailable", "together",
]
