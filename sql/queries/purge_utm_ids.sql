SELECT DISTINCT utm_id
FROM
(
    SELECT utm_id FROM utms WHERE tenant_id = %(tenant)s
    UNION ALL SELECT utm_id FROM utm_status WHERE tenant_id = %(tenant)s
    UNION ALL SELECT DISTINCT utm_id FROM events WHERE tenant_id = %(tenant)s
)
ORDER BY utm_id
