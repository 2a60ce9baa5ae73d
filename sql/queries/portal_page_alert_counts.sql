SELECT grade, status, count() AS alerts
FROM portal_alerts
WHERE tenant_id = %(tenant)s
  AND toDate(last_seen, %(tz)s) >= toDate(%(from)s) AND toDate(first_seen, %(tz)s) <= toDate(%(to)s)
GROUP BY grade, status
