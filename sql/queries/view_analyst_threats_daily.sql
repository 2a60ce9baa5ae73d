SELECT day, threat_category, grade, industry, region, tenants, detections
FROM analyst_threats_daily
WHERE day BETWEEN toDate(%(from)s) AND toDate(%(to)s)
ORDER BY day, threat_category, grade, industry, region
