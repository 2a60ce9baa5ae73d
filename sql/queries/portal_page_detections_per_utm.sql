SELECT utm_id, type, sum(detections) AS detections
FROM portal_detections_daily
WHERE tenant_id = %(tenant)s AND (%(utm)s = '' OR utm_id = %(utm)s) AND day BETWEEN toDate(%(from)s) AND toDate(%(to)s)
GROUP BY utm_id, type
ORDER BY utm_id, type
