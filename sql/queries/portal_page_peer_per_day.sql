SELECT day, type, tenants, avg_detections
FROM portal_peer_average_daily
WHERE day BETWEEN toDate(%(from)s) AND toDate(%(to)s)
ORDER BY day, type
