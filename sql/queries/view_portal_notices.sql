SELECT tenant_id, notice_id, version, kind, level, starts_at, ends_at, title, published_at, cancelled, short_notice
FROM portal_notices
WHERE (%(every_tenant)s = 1 OR tenant_id = %(tenant)s)
  AND (published_at IS NULL OR toDate(published_at, %(tz)s) <= toDate(%(to)s))
  AND (ends_at IS NULL OR toDate(ends_at, %(tz)s) >= toDate(%(from)s))
ORDER BY tenant_id, published_at, notice_id
