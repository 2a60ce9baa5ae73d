-- portal_tenants: each tenant's own record as the registry mirror has it (latest version, not
-- removed), for the monthly report wherever it is rendered (the worker, `mimamori report`, the
-- portal's report page). The portal role reads it through its row policy (sql/roles/), one tenant
-- only, instead of the whole `tenants` table.
CREATE VIEW IF NOT EXISTS portal_tenants SQL SECURITY DEFINER AS
SELECT tenant_id, name, notify_emails, admin_emails, locale, service_start, contract_end, industry, region,
       size_band, active
FROM tenants FINAL
WHERE deleted = 0;
