SELECT tenant_id, alert_id, utm_id, grade, status, title, host_ip, first_seen, last_seen, event_count,
       categories, recommended_action, insurance_eligible_until
FROM portal_alerts
WHERE (%(every_tenant)s = 1 OR tenant_id = %(tenant)s)
  AND toDate(last_seen, %(tz)s) >= toDate(%(from)s) AND toDate(first_seen, %(tz)s) <= toDate(%(to)s)
ORDER BY tenant_id, first_seen, alert_id
