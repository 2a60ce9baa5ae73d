-- Service notices (CONTRACT.md, "Service notices"): each version of a notice as the notices mirror
-- reads it from service.notices, and the portal_notices view of the notices concerning each tenant.
-- Tenants gain admin_emails (who gets the notices) and UTMs the firmware a notice may select them by.
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS admin_emails Array(String) DEFAULT [];

ALTER TABLE utms ADD COLUMN IF NOT EXISTS firmware Nullable(String);

-- No TTL: a notice is small and the portal keeps its history. A removal (null record) writes a
-- row with deleted = 1; the latest row of a notice is the one with the highest (updated_at, version).
CREATE TABLE IF NOT EXISTS notices
(
    notice_id String,
    version UInt32,
    kind LowCardinality(String),
    level Nullable(String),
    starts_at Nullable(DateTime64(3, 'UTC')),
    ends_at Nullable(DateTime64(3, 'UTC')),
    audience_all UInt8,
    audience_tenants Array(String),
    audience_models Array(String),
    audience_firmware Array(String),
    title String,
    title_en String,
    mailed UInt8,
    cancelled UInt8,
    short_notice UInt8,
    published_at Nullable(DateTime64(3, 'UTC')),
    updated_at DateTime64(3, 'UTC'),
    deleted UInt8
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY notice_id
SETTINGS non_replicated_deduplication_window = 1000;

-- The notices that concern each tenant, latest version: all active tenants, the listed ones, or
-- those with an active UTM of one of the models and (when both are given) on one of the firmware
-- versions. The title is in the tenant's locale when the notice has one in it.
CREATE OR REPLACE VIEW portal_notices SQL SECURITY DEFINER AS
SELECT t.tenant_id AS tenant_id, n.notice_id AS notice_id, n.version AS version, n.kind AS kind,
       n.level AS level, n.starts_at AS starts_at, n.ends_at AS ends_at,
       if(t.locale = 'en' AND n.title_en != '', n.title_en, n.title) AS title,
       n.published_at AS published_at, n.cancelled AS cancelled, n.short_notice AS short_notice
FROM
(
    SELECT notice_id,
           tupleElement(latest, 1) AS version, tupleElement(latest, 2) AS kind, tupleElement(latest, 3) AS level,
           tupleElement(latest, 4) AS starts_at, tupleElement(latest, 5) AS ends_at,
           tupleElement(latest, 6) AS audience_all, tupleElement(latest, 7) AS audience_tenants,
           tupleElement(latest, 8) AS audience_models, tupleElement(latest, 9) AS audience_firmware,
           tupleElement(latest, 10) AS title, tupleElement(latest, 11) AS title_en,
           tupleElement(latest, 12) AS cancelled, tupleElement(latest, 13) AS short_notice,
           tupleElement(latest, 14) AS published_at, tupleElement(latest, 15) AS deleted
    FROM
    (
        SELECT notice_id,
               argMax(tuple(version, kind, level, starts_at, ends_at, audience_all, audience_tenants,
                            audience_models, audience_firmware, title, title_en, cancelled, short_notice,
                            published_at, deleted), tuple(updated_at, version)) AS latest
        FROM notices
        GROUP BY notice_id
    )
) AS n
CROSS JOIN
(
    SELECT tenant_id, locale, active FROM tenants FINAL WHERE deleted = 0
) AS t
LEFT JOIN
(
    SELECT tenant_id, groupArray(ifNull(model, '')) AS models, groupArray(ifNull(firmware, '')) AS firmware
    FROM utms FINAL
    WHERE deleted = 0 AND active = 1
    GROUP BY tenant_id
) AS u ON u.tenant_id = t.tenant_id
WHERE n.deleted = 0 AND t.active = 1
  AND (n.audience_all = 1
       OR has(n.audience_tenants, t.tenant_id)
       OR ((notEmpty(n.audience_models) OR notEmpty(n.audience_firmware))
           AND arrayExists((m, f) -> (empty(n.audience_models) OR has(n.audience_models, m))
                                     AND (empty(n.audience_firmware) OR has(n.audience_firmware, f)),
                           u.models, u.firmware)))
SETTINGS join_use_nulls = 0;
