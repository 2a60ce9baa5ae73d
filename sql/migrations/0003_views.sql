-- The contract's views: the portal and the analysts read only these.
-- SQL SECURITY DEFINER lets a role that may SELECT only the view read it (sql/roles/).
-- Registry tables are ReplacingMergeTree: FINAL gives the latest record of each id.

CREATE VIEW IF NOT EXISTS portal_detections_daily SQL SECURITY DEFINER AS
SELECT tenant_id, utm_id, day, type, action, sum(detections) AS detections
FROM detections_daily
GROUP BY tenant_id, utm_id, day, type, action;

CREATE VIEW IF NOT EXISTS portal_alerts SQL SECURITY DEFINER AS
SELECT tenant_id, alert_id, utm_id, grade, status, title, rule, host_ip, host_mac, first_seen, last_seen,
       event_count, categories, recommended_action, insurance_eligible_until, version, updated_at
FROM alerts FINAL;

CREATE VIEW IF NOT EXISTS portal_utm_status SQL SECURITY DEFINER AS
SELECT u.tenant_id AS tenant_id, u.utm_id AS utm_id,
       if(s.utm_id = '', 'never_seen', s.status) AS status,
       s.last_seen AS last_seen, s.offline_since AS offline_since, u.active AS active
FROM (SELECT utm_id, tenant_id, active FROM utms FINAL WHERE deleted = 0) AS u
LEFT JOIN
(
    SELECT utm_id, argMax(status, at) AS status, argMax(last_seen, at) AS last_seen,
           argMax(offline_since, at) AS offline_since
    FROM utm_status
    GROUP BY utm_id
) AS s ON s.utm_id = u.utm_id
SETTINGS join_use_nulls = 0;

-- Mean over every tenant active on that day (active, service started, contract not ended),
-- those without detections counted as zero; one row per day with any detection and threat type.
CREATE VIEW IF NOT EXISTS portal_peer_average_daily SQL SECURITY DEFINER AS
SELECT k.day AS day, k.type AS type, count() AS tenants, sum(p.detections) / count() AS avg_detections
FROM (SELECT DISTINCT day, arrayJoin(['av', 'ips', 'url']) AS type FROM detections_daily) AS k
CROSS JOIN
(
    SELECT tenant_id, service_start, contract_end FROM tenants FINAL WHERE deleted = 0 AND active = 1
) AS t
LEFT JOIN
(
    SELECT day, type, tenant_id, sum(detections) AS detections
    FROM detections_daily
    GROUP BY day, type, tenant_id
) AS p ON p.day = k.day AND p.type = k.type AND p.tenant_id = t.tenant_id
WHERE (t.service_start IS NULL OR t.service_start <= k.day)
  AND (t.contract_end IS NULL OR k.day <= t.contract_end)
GROUP BY k.day, k.type
SETTINGS join_use_nulls = 0;

CREATE VIEW IF NOT EXISTS portal_web_usage_daily SQL SECURITY DEFINER AS
SELECT tenant_id, day, web_category, app_name, sum(hits) AS hits
FROM web_usage_daily
GROUP BY tenant_id, day, web_category, app_name;

-- Anonymized: no tenant, UTM, address, URL or file name, and no cell of fewer than 5 tenants.
CREATE VIEW IF NOT EXISTS analyst_threats_daily SQL SECURITY DEFINER AS
SELECT r.day AS day, r.threat_category AS threat_category, r.grade AS grade,
       coalesce(t.industry, '') AS industry, coalesce(t.region, '') AS region,
       uniqExact(r.tenant_id) AS tenants, sum(r.detections) AS detections
FROM threats_daily AS r
LEFT JOIN (SELECT tenant_id, industry, region FROM tenants FINAL WHERE deleted = 0) AS t
    ON t.tenant_id = r.tenant_id
GROUP BY day, threat_category, grade, industry, region
HAVING tenants >= 5;
