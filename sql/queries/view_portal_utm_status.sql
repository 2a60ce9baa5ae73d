SELECT tenant_id, utm_id, status, last_seen, offline_since
FROM portal_utm_status
WHERE (%(tenant)s = '' OR tenant_id = %(tenant)s)
ORDER BY tenant_id, utm_id
