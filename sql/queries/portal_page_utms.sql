SELECT utm_id, status, last_seen, offline_since
FROM portal_utm_status
WHERE tenant_id = %(tenant)s AND active = 1
ORDER BY utm_id
