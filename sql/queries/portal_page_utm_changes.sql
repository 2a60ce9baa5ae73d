SELECT utm_id, status, at, offline_since
FROM portal_utm_status_changes
WHERE tenant_id = %(tenant)s AND utm_id = %(utm)s
ORDER BY at DESC
LIMIT 50
