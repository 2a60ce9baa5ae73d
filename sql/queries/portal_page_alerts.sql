SELECT alert_id, utm_id, grade, status, title, host_ip, host_mac, first_seen, last_seen, event_count,
       insurance_eligible_until
FROM portal_alerts
WHERE tenant_id = %(tenant)s
  AND toDate(last_seen, %(tz)s) >= toDate(%(from)s) AND toDate(first_seen, %(tz)s) <= toDate(%(to)s)
  AND grade >= %(min_grade)s
ORDER BY grade DESC, first_seen DESC, alert_id
LIMIT %(limit)s
