-- Daily roll-ups behind the portal and analyst views, filled by materialized views on `events`.
-- {tz} is the one value substituted at migrate time: the quoted MIMAMORI_TZ (days are local days).
-- `mimamori migrate` records it with this version and refuses to run with another zone later,
-- because rows already rolled up keep the days of the zone they were written with.
-- Detections are the threat types (av, ips, url); app and web events are usage records.

CREATE TABLE IF NOT EXISTS detections_daily
(
    tenant_id String,
    utm_id String,
    day Date,
    type LowCardinality(String),
    action LowCardinality(String),
    detections UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, utm_id, day, type, action)
TTL day + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS detections_daily_mv TO detections_daily AS
SELECT tenant_id, utm_id, toDate(ts, {tz}) AS day, type, action, count() AS detections
FROM events
WHERE type IN ('av', 'ips', 'url')
GROUP BY tenant_id, utm_id, day, type, action;

CREATE TABLE IF NOT EXISTS web_usage_daily
(
    tenant_id String,
    day Date,
    web_category String,
    app_name String,
    hits UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, day, web_category, app_name)
TTL day + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS web_usage_daily_mv TO web_usage_daily AS
SELECT tenant_id, toDate(ts, {tz}) AS day, coalesce(web_category, '') AS web_category,
       coalesce(app_name, '') AS app_name, count() AS hits
FROM events
WHERE type IN ('app', 'web')
GROUP BY tenant_id, day, web_category, app_name;

-- Per tenant so that the analyst view can count distinct tenants exactly; only views leave it.
CREATE TABLE IF NOT EXISTS threats_daily
(
    day Date,
    threat_category String,
    grade Int8,
    tenant_id String,
    detections UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, threat_category, grade, tenant_id)
TTL day + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS threats_daily_mv TO threats_daily AS
SELECT toDate(ts, {tz}) AS day, coalesce(threat_category, '') AS threat_category, signal AS grade,
       tenant_id, count() AS detections
FROM events
WHERE signal >= 0
GROUP BY day, threat_category, grade, tenant_id;
