SELECT tenant_id, utm_id, day, type, action, detections
FROM portal_detections_daily
WHERE (%(tenant)s = '' OR tenant_id = %(tenant)s) AND day BETWEEN toDate(%(from)s) AND toDate(%(to)s)
ORDER BY tenant_id, utm_id, day, type, action
