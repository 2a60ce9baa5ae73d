SELECT tenant_id, utm_id, event_id, ts, type, action, direction, src_ip, dst_ip, src_mac, dst_mac, signature,
       threat_category, url, domain, file_name, alert_id
FROM portal_detections
WHERE (%(every_tenant)s = 1 OR tenant_id = %(tenant)s)
  AND toDate(ts, %(tz)s) BETWEEN toDate(%(from)s) AND toDate(%(to)s)
ORDER BY tenant_id, ts, utm_id, event_id
