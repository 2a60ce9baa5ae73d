SELECT day, sum(detections) AS n
FROM portal_detections_daily
WHERE tenant_id = %(tenant)s AND day BETWEEN toDate(%(from)s) AND toDate(%(to)s)
  AND (%(type)s = '' OR type = %(type)s) AND (%(action)s = '' OR action = %(action)s)
  AND (%(utm)s = '' OR utm_id = %(utm)s)
GROUP BY day
ORDER BY day DESC
