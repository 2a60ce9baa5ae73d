SELECT tenant_id, utm_id, status, at, offline_since
FROM portal_utm_status_changes
WHERE (%(every_tenant)s = 1 OR tenant_id = %(tenant)s)
  AND toDate(at, %(tz)s) BETWEEN toDate(%(from)s) AND toDate(%(to)s)
ORDER BY tenant_id, utm_id, at, status
