SELECT utm_id, argMax(status, at) AS status
FROM portal_utm_status_changes
WHERE tenant_id = %(tenant)s AND at < %(before)s
GROUP BY utm_id
ORDER BY utm_id
