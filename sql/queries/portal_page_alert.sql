SELECT alert_id, utm_id, grade, status, title, rule, host_ip, host_mac, first_seen, last_seen, event_count,
       categories, recommended_action, insurance_eligible_until
FROM portal_alerts
WHERE tenant_id = %(tenant)s AND alert_id = %(alert)s
LIMIT 1
