SELECT day, type, sum(detections) AS detections
FROM portal_detections_daily
WHERE tenant_id = %(tenant)s AND day BETWEEN toDate(%(from)s) AND toDate(%(to)s)
GROUP BY day, type
ORDER BY day, type
