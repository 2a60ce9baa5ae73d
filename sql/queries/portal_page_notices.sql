SELECT notice_id, version, kind, level, starts_at, ends_at, title, published_at, cancelled, short_notice
FROM portal_notices
WHERE tenant_id = %(tenant)s
ORDER BY published_at DESC, notice_id
LIMIT 100
