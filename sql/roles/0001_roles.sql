-- Roles for a ClickHouse server with RBAC (24.10 or later: SQL SECURITY DEFINER views, so SELECT on
-- a view is enough to read it; getSettingOrDefault in the row policies). `{db}` is the database.
-- Applied by an administrator (`mimamori migrate --roles` with an account that has ACCESS MANAGEMENT);
-- every statement may run again. Not applicable to chdb (no access control) nor to ClickHouse 18.16.
-- What each role may do is the least its program needs (README, "Security"):
--   mimamori_migrator  `mimamori migrate` and `purge-tenant`: the schema, its copies, deletions
--   mimamori_writer    `mimamori worker` and `replay --store`: what the worker writes and reads
--   portal_reader      the portal: the portal_* views, each row of a tenant view bound to one tenant
--   analyst_reader     anonymized statistics: analyst_threats_daily only
-- A user gets one of them: GRANT portal_reader TO some_user (see the portal user below).

-- Grants of earlier versions of this file went further (INSERT on every table): start clean.
CREATE ROLE IF NOT EXISTS mimamori_migrator;
CREATE ROLE IF NOT EXISTS mimamori_writer;
CREATE ROLE IF NOT EXISTS portal_reader;
CREATE ROLE IF NOT EXISTS analyst_reader;
REVOKE ALL ON {db}.* FROM mimamori_migrator;
REVOKE ALL ON {db}.* FROM mimamori_writer;
REVOKE ALL ON {db}.* FROM portal_reader;
REVOKE ALL ON {db}.* FROM analyst_reader;

-- The migrator owns the schema: it creates the tables and the DEFINER views (it is their definer,
-- so it reads what the views read; CREATE OR REPLACE VIEW needs DROP VIEW), adds columns, copies rows
-- into new tables, and deletes a tenant's rows (ALTER TABLE ... DELETE). A migration that needs more
-- (dropping a table) adds its grant here.
GRANT CREATE TABLE, CREATE VIEW, DROP VIEW, ALTER TABLE, SELECT, INSERT ON {db}.* TO mimamori_migrator;

-- The worker inserts its rows (the materialized views' target tables are filled by its inserts)...
GRANT INSERT ON {db}.events TO mimamori_writer;
GRANT INSERT ON {db}.alerts TO mimamori_writer;
GRANT INSERT ON {db}.utm_status TO mimamori_writer;
GRANT INSERT ON {db}.utm_last_seen TO mimamori_writer;
GRANT INSERT ON {db}.mails TO mimamori_writer;
GRANT INSERT ON {db}.tenants TO mimamori_writer;
GRANT INSERT ON {db}.utms TO mimamori_writer;
GRANT INSERT ON {db}.notices TO mimamori_writer;
GRANT INSERT ON {db}.detections_daily TO mimamori_writer;
GRANT INSERT ON {db}.web_usage_daily TO mimamori_writer;
GRANT INSERT ON {db}.threats_daily TO mimamori_writer;
GRANT INSERT ON {db}.utm_status_changes TO mimamori_writer;
GRANT INSERT ON {db}.threat_categories_daily TO mimamori_writer;
-- ... and reads: at start, which migrations are applied (it applies none: the migrator did);
GRANT CREATE TABLE ON {db}.schema_migrations TO mimamori_writer;
GRANT SELECT ON {db}.schema_migrations TO mimamori_writer;
-- after a crash, which of a batch's events are stored already (sql/queries/events_stored.sql);
GRANT SELECT(utm_id, event_id, ts) ON {db}.events TO mimamori_writer;
-- for the monthly report: the tenant as mirrored, the reports delivered, and the portal views.
GRANT SELECT ON {db}.portal_tenants TO mimamori_writer;
GRANT SELECT(tenant_id, kind, sent_at, message_id) ON {db}.mails TO mimamori_writer;
GRANT SELECT ON {db}.portal_detections_daily TO mimamori_writer;
GRANT SELECT ON {db}.portal_peer_average_daily TO mimamori_writer;
GRANT SELECT ON {db}.portal_alerts TO mimamori_writer;
GRANT SELECT ON {db}.portal_utm_status TO mimamori_writer;
GRANT SELECT ON {db}.portal_utm_status_changes TO mimamori_writer;
GRANT SELECT ON {db}.portal_threat_categories_daily TO mimamori_writer;

-- The portal reads the portal views only.
GRANT SELECT ON {db}.portal_detections_daily TO portal_reader;
GRANT SELECT ON {db}.portal_alerts TO portal_reader;
GRANT SELECT ON {db}.portal_utm_status TO portal_reader;
GRANT SELECT ON {db}.portal_peer_average_daily TO portal_reader;
GRANT SELECT ON {db}.portal_web_usage_daily TO portal_reader;
GRANT SELECT ON {db}.portal_notices TO portal_reader;
GRANT SELECT ON {db}.portal_utm_status_changes TO portal_reader;
GRANT SELECT ON {db}.portal_threat_categories_daily TO portal_reader;
GRANT SELECT ON {db}.portal_detections TO portal_reader;
-- its own tenant's record (the report page), through the row policy below, not the tenants table
GRANT SELECT ON {db}.portal_tenants TO portal_reader;
-- and its accounts (login, lockout counts, own credentials), which are not a tenant's rows:
-- an account is found by its user id before the tenant is known.
GRANT SELECT, INSERT ON {db}.portal_accounts TO portal_reader;

-- Analysts read the anonymized view only.
GRANT SELECT ON {db}.analyst_threats_daily TO analyst_reader;

-- Row policies: a portal user sees only the rows of the tenant its account is bound to, by the
-- setting SQL_mimamori_tenant (the server's custom_settings_prefixes must allow `SQL_`, as the
-- default configuration does). Bind a user to a tenant so that it cannot change it:
--   CREATE USER portal_t1 IDENTIFIED WITH sha256_password BY '...'
--       DEFAULT ROLE portal_reader SETTINGS SQL_mimamori_tenant = 't1' CONST;
--   GRANT portal_reader TO portal_t1;
-- A user without the setting reads nothing from a tenant view, never every tenant. The writer
-- (the monthly report of each tenant) and the migrator (`mimamori query`) read every row.
CREATE ROW POLICY OR REPLACE mimamori_tenant ON {db}.portal_detections_daily FOR SELECT USING tenant_id = getSettingOrDefault('SQL_mimamori_tenant', '') AND tenant_id != '' TO portal_reader;
CREATE ROW POLICY OR REPLACE mimamori_tenant ON {db}.portal_alerts FOR SELECT USING tenant_id = getSettingOrDefault('SQL_mimamori_tenant', '') AND tenant_id != '' TO portal_reader;
CREATE ROW POLICY OR REPLACE mimamori_tenant ON {db}.portal_utm_status FOR SELECT USING tenant_id = getSettingOrDefault('SQL_mimamori_tenant', '') AND tenant_id != '' TO portal_reader;
CREATE ROW POLICY OR REPLACE mimamori_tenant ON {db}.portal_web_usage_daily FOR SELECT USING tenant_id = getSettingOrDefault('SQL_mimamori_tenant', '') AND tenant_id != '' TO portal_reader;
CREATE ROW POLICY OR REPLACE mimamori_tenant ON {db}.portal_notices FOR SELECT USING tenant_id = getSettingOrDefault('SQL_mimamori_tenant', '') AND tenant_id != '' TO portal_reader;
CREATE ROW POLICY OR REPLACE mimamori_tenant ON {db}.portal_utm_status_changes FOR SELECT USING tenant_id = getSettingOrDefault('SQL_mimamori_tenant', '') AND tenant_id != '' TO portal_reader;
CREATE ROW POLICY OR REPLACE mimamori_tenant ON {db}.portal_threat_categories_daily FOR SELECT USING tenant_id = getSettingOrDefault('SQL_mimamori_tenant', '') AND tenant_id != '' TO portal_reader;
CREATE ROW POLICY OR REPLACE mimamori_tenant ON {db}.portal_detections FOR SELECT USING tenant_id = getSettingOrDefault('SQL_mimamori_tenant', '') AND tenant_id != '' TO portal_reader;
CREATE ROW POLICY OR REPLACE mimamori_operators ON {db}.portal_detections_daily FOR SELECT USING 1 TO mimamori_writer, mimamori_migrator;
CREATE ROW POLICY OR REPLACE mimamori_operators ON {db}.portal_detections FOR SELECT USING 1 TO mimamori_writer, mimamori_migrator;
CREATE ROW POLICY OR REPLACE mimamori_operators ON {db}.portal_alerts FOR SELECT USING 1 TO mimamori_writer, mimamori_migrator;
CREATE ROW POLICY OR REPLACE mimamori_operators ON {db}.portal_utm_status FOR SELECT USING 1 TO mimamori_writer, mimamori_migrator;
CREATE ROW POLICY OR REPLACE mimamori_operators ON {db}.portal_web_usage_daily FOR SELECT USING 1 TO mimamori_writer, mimamori_migrator;
CREATE ROW POLICY OR REPLACE mimamori_operators ON {db}.portal_notices FOR SELECT USING 1 TO mimamori_writer, mimamori_migrator;
CREATE ROW POLICY OR REPLACE mimamori_operators ON {db}.portal_utm_status_changes FOR SELECT USING 1 TO mimamori_writer, mimamori_migrator;
CREATE ROW POLICY OR REPLACE mimamori_operators ON {db}.portal_threat_categories_daily FOR SELECT USING 1 TO mimamori_writer, mimamori_migrator;
CREATE ROW POLICY OR REPLACE mimamori_tenant ON {db}.portal_tenants FOR SELECT USING tenant_id = getSettingOrDefault('SQL_mimamori_tenant', '') AND tenant_id != '' TO portal_reader;
CREATE ROW POLICY OR REPLACE mimamori_operators ON {db}.portal_tenants FOR SELECT USING 1 TO mimamori_writer, mimamori_migrator;
