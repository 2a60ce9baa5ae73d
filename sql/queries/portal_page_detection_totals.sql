SELECT type, action, sum(detections) AS detections
FROM portal_detections_daily
WHERE tenant_id = %(tenant)s AND day BETWEEN toDate(%(from)s) AND toDate(%(to)s)
GROUP BY type, action
ORDER BY type, action
