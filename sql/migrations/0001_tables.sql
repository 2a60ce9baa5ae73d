-- Base tables. Times are DateTime64(3, 'UTC'); events, detections and alerts expire after 90 days,
-- delivered mails after 395 days (13 months: the proof behind insurance claims).
-- Every table keeps a non-replicated deduplication window so a retried insert with the same
-- insert_deduplication_token is taken once.

CREATE TABLE IF NOT EXISTS events
(
    event_id String,
    utm_id String,
    tenant_id String,
    ts DateTime64(3, 'UTC'),
    type LowCardinality(String),
    action LowCardinality(String),
    direction LowCardinality(String),
    src_ip String,
    dst_ip String,
    received_at DateTime64(3, 'UTC'),
    src_mac Nullable(String),
    dst_mac Nullable(String),
    src_port Nullable(UInt16),
    dst_port Nullable(UInt16),
    proto Nullable(String),
    src_zone Nullable(String),
    dst_zone Nullable(String),
    signature_id Nullable(String),
    signature Nullable(String),
    threat_category Nullable(String),
    vendor_severity Nullable(UInt8),
    url Nullable(String),
    domain Nullable(String),
    file_name Nullable(String),
    file_sha256 Nullable(String),
    app_name Nullable(String),
    web_category Nullable(String),
    extra String,
    signal Int8,
    alert_id String
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (tenant_id, utm_id, ts, event_id)
TTL toDateTime(ts) + INTERVAL 90 DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS alerts
(
    alert_id String,
    tenant_id String,
    utm_id String,
    host_ip Nullable(String),
    host_mac Nullable(String),
    grade UInt8,
    rule String,
    title String,
    first_seen DateTime64(3, 'UTC'),
    last_seen DateTime64(3, 'UTC'),
    event_count UInt32,
    categories Array(String),
    recommended_action String,
    status LowCardinality(String),
    insurance_eligible_until Nullable(Date),
    version UInt32,
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(first_seen)
ORDER BY (tenant_id, alert_id)
TTL toDateTime(last_seen) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000;

-- No TTL: the latest change of a UTM silent for months is still its status.
CREATE TABLE IF NOT EXISTS utm_status
(
    utm_id String,
    tenant_id String,
    status LowCardinality(String),
    at DateTime64(3, 'UTC'),
    last_seen Nullable(DateTime64(3, 'UTC')),
    offline_since Nullable(DateTime64(3, 'UTC'))
)
ENGINE = ReplacingMergeTree(at)
ORDER BY (tenant_id, utm_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS mails
(
    message_id String,
    kind LowCardinality(String),
    tenant_id String,
    `to` Array(String),
    subject String,
    grade Nullable(UInt8),
    alert_ids Array(String),
    utm_id Nullable(String),
    sent_at DateTime64(3, 'UTC'),
    delivered_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(sent_at)
ORDER BY (tenant_id, message_id)
TTL toDateTime(sent_at) + INTERVAL 395 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS tenants
(
    tenant_id String,
    name String,
    notify_emails Array(String),
    locale LowCardinality(String),
    service_start Nullable(Date),
    contract_end Nullable(Date),
    industry Nullable(String),
    region Nullable(String),
    size_band Nullable(String),
    active UInt8,
    updated_at DateTime64(3, 'UTC'),
    deleted UInt8
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY tenant_id
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS utms
(
    utm_id String,
    tenant_id String,
    model Nullable(String),
    registered_at Nullable(DateTime64(3, 'UTC')),
    active UInt8,
    updated_at DateTime64(3, 'UTC'),
    deleted UInt8
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY utm_id
SETTINGS non_replicated_deduplication_window = 1000;
