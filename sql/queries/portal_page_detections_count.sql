SELECT count() AS n
FROM portal_detections
WHERE tenant_id = %(tenant)s
  AND ts >= %(since)s AND ts <= %(until)s AND toDate(ts, %(tz)s) BETWEEN toDate(%(from)s) AND toDate(%(to)s)
  AND (%(type)s = '' OR type = %(type)s) AND (%(action)s = '' OR action = %(action)s)
  AND (%(utm)s = '' OR utm_id = %(utm)s) AND (%(alert)s = '' OR alert_id = %(alert)s)
