SELECT tenant_id, utm_id, day, type, action, detections
FROM portal_detections_daily
WHERE (%(every_tenant)s = 1 OR tenant_id = %(tenant)s) AND day BETWEEN toDate(%(from)s) AND toDate(%(to)s)
ORDER BY tenant_id, utm_id, day, type, action
