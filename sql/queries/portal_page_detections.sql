SELECT utm_id, event_id, ts, type, action, direction, src_ip, dst_ip, src_mac, dst_mac, signature, threat_category,
       url, domain, file_name, alert_id
FROM portal_detections
WHERE tenant_id = %(tenant)s
  AND ts >= %(since)s AND ts <= %(until)s AND toDate(ts, %(tz)s) BETWEEN toDate(%(from)s) AND toDate(%(to)s)
  AND (%(type)s = '' OR type = %(type)s) AND (%(action)s = '' OR action = %(action)s)
  AND (%(utm)s = '' OR utm_id = %(utm)s) AND (%(alert)s = '' OR alert_id = %(alert)s)
ORDER BY ts DESC, utm_id, event_id
LIMIT %(limit)s OFFSET %(offset)s
