SELECT tenant_id, day, web_category, app_name, hits
FROM portal_web_usage_daily
WHERE (%(every_tenant)s = 1 OR tenant_id = %(tenant)s) AND day BETWEEN toDate(%(from)s) AND toDate(%(to)s)
ORDER BY tenant_id, day, hits DESC, web_category, app_name
