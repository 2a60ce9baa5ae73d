SELECT tenant_id, day, type, threat_category, action, detections
FROM portal_threat_categories_daily
WHERE (%(every_tenant)s = 1 OR tenant_id = %(tenant)s) AND day BETWEEN toDate(%(from)s) AND toDate(%(to)s)
ORDER BY tenant_id, day, type, threat_category, action
