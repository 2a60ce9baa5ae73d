SELECT tenant_id, name, notify_emails, admin_emails, locale, service_start, contract_end, industry, region, size_band, active
FROM portal_tenants
WHERE tenant_id = %(tenant)s
