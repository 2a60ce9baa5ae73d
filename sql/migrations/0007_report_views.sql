-- Two more portal views, for the monthly report (which says nothing the portal could not show):
-- every status change of each UTM (utm_status keeps only the latest one per UTM once merged), and
-- each tenant's detections by threat category and action (detections_daily has no category).
-- Rows already in the store are copied in before the materialized views start to fill the tables.

CREATE TABLE IF NOT EXISTS utm_status_changes
(
    tenant_id String,
    utm_id String,
    status LowCardinality(String),
    at DateTime64(3, 'UTC'),
    offline_since Nullable(DateTime64(3, 'UTC'))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (tenant_id, utm_id, at, status)
TTL toDateTime(at) + INTERVAL 395 DAY
SETTINGS non_replicated_deduplication_window = 1000;

INSERT INTO utm_status_changes (tenant_id, utm_id, status, at, offline_since)
SELECT tenant_id, utm_id, status, at, offline_since FROM utm_status;

CREATE MATERIALIZED VIEW IF NOT EXISTS utm_status_changes_mv TO utm_status_changes AS
SELECT tenant_id, utm_id, status, at, offline_since FROM utm_status;

CREATE TABLE IF NOT EXISTS threat_categories_daily
(
    tenant_id String,
    day Date,
    type LowCardinality(String),
    threat_category String,
    action LowCardinality(String),
    detections UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, day, type, threat_category, action)
TTL day + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000;

INSERT INTO threat_categories_daily (tenant_id, day, type, threat_category, action, detections)
SELECT tenant_id, toDate(ts, {tz}) AS day, type, coalesce(threat_category, '') AS threat_category, action,
       count() AS detections
FROM events
WHERE type IN ('av', 'ips', 'url')
GROUP BY tenant_id, day, type, threat_category, action;

CREATE MATERIALIZED VIEW IF NOT EXISTS threat_categories_daily_mv TO threat_categories_daily AS
SELECT tenant_id, toDate(ts, {tz}) AS day, type, coalesce(threat_category, '') AS threat_category, action,
       count() AS detections
FROM events
WHERE type IN ('av', 'ips', 'url')
GROUP BY tenant_id, day, type, threat_category, action;

CREATE VIEW IF NOT EXISTS portal_utm_status_changes SQL SECURITY DEFINER AS
SELECT DISTINCT tenant_id, utm_id, status, at, offline_since
FROM utm_status_changes;

CREATE VIEW IF NOT EXISTS portal_threat_categories_daily SQL SECURITY DEFINER AS
SELECT tenant_id, day, type, threat_category, action, sum(detections) AS detections
FROM threat_categories_daily
GROUP BY tenant_id, day, type, threat_category, action;
