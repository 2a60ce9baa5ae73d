SELECT tenant_id, utm_id, status, last_seen, offline_since
FROM portal_utm_status
WHERE (%(every_tenant)s = 1 OR tenant_id = %(tenant)s)
ORDER BY tenant_id, utm_id
