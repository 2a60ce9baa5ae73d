"""The monthly report: each tenant's month from the portal views, with charts, as one mail."""
