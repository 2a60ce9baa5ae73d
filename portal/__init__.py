"""The customer portal (`mimamori portal`): server-rendered pages over the portal_* views."""
