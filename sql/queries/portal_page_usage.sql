SELECT web_category, app_name, sum(hits) AS hits
FROM portal_web_usage_daily
WHERE tenant_id = %(tenant)s AND day BETWEEN toDate(%(from)s) AND toDate(%(to)s)
GROUP BY web_category, app_name
ORDER BY hits DESC, web_category, app_name
LIMIT 200
