-- Roles for server deployments with RBAC (ClickHouse 24.2 or later: the views are
-- SQL SECURITY DEFINER, so SELECT on a view is enough to read it). `{db}` is the database.
-- Not applicable to chdb (no access control) nor to ClickHouse 18.16 (no RBAC: use users.xml).
-- Grant a role to a user with: GRANT portal_reader TO some_user;

CREATE ROLE IF NOT EXISTS mimamori_writer;
GRANT INSERT ON {db}.* TO mimamori_writer;
GRANT SELECT ON {db}.schema_migrations TO mimamori_writer;

CREATE ROLE IF NOT EXISTS portal_reader;
GRANT SELECT ON {db}.portal_detections_daily TO portal_reader;
GRANT SELECT ON {db}.portal_alerts TO portal_reader;
GRANT SELECT ON {db}.portal_utm_status TO portal_reader;
GRANT SELECT ON {db}.portal_peer_average_daily TO portal_reader;
GRANT SELECT ON {db}.portal_web_usage_daily TO portal_reader;
GRANT SELECT ON {db}.portal_utm_status_changes TO portal_reader;
GRANT SELECT ON {db}.portal_threat_categories_daily TO portal_reader;

CREATE ROLE IF NOT EXISTS analyst_reader;
GRANT SELECT ON {db}.analyst_threats_daily TO analyst_reader;
