-- Tenant isolation and what the views give away (issue 20; released migrations are frozen, so the
-- views are replaced here).
--
-- utm_last_seen: each UTM's last sign of life, written by the heartbeat check (once a minute) for
-- every UTM that showed one since the previous check. utm_status only gets a row when a status
-- changes, so the last_seen of an online UTM was the moment it came online (31 days stale in a
-- month-long run). No TTL, as utm_status: the last sign of life of a UTM silent for months stays.
CREATE TABLE IF NOT EXISTS utm_last_seen
(
    tenant_id String,
    utm_id String,
    last_seen DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(last_seen)
ORDER BY (tenant_id, utm_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- portal_utm_status: status and times joined by tenant AND UTM (a UTM moved to another tenant no
-- longer shows the old tenant's times), last_seen the latest of the status changes and the signs
-- of life. A UTM with signs of life under its tenant but no status change there yet (it moved
-- while online) is online.
CREATE OR REPLACE VIEW portal_utm_status SQL SECURITY DEFINER AS
SELECT u.tenant_id AS tenant_id, u.utm_id AS utm_id,
       multiIf(s.utm_id != '', s.status, l.utm_id != '', 'online', 'never_seen') AS status,
       multiIf(l.utm_id = '', s.last_seen,
               s.utm_id = '' OR s.last_seen IS NULL OR l.last_seen > s.last_seen, toNullable(l.last_seen),
               s.last_seen) AS last_seen,
       if(s.utm_id != '' AND s.status = 'offline', s.offline_since, NULL) AS offline_since,
       u.active AS active
FROM (SELECT utm_id, tenant_id, active FROM utms FINAL WHERE deleted = 0) AS u
LEFT JOIN
(
    SELECT tenant_id, utm_id,
           tupleElement(latest, 1) AS status,
           tupleElement(latest, 2) AS last_seen,
           tupleElement(latest, 3) AS offline_since
    FROM
    (
        SELECT tenant_id, utm_id, argMax(tuple(status, last_seen, offline_since), at) AS latest
        FROM utm_status
        GROUP BY tenant_id, utm_id
    )
) AS s ON s.tenant_id = u.tenant_id AND s.utm_id = u.utm_id
LEFT JOIN
(
    SELECT tenant_id, utm_id, max(last_seen) AS last_seen
    FROM utm_last_seen
    GROUP BY tenant_id, utm_id
) AS l ON l.tenant_id = u.tenant_id AND l.utm_id = u.utm_id
SETTINGS join_use_nulls = 0;

-- portal_peer_average_daily: no row for a day with fewer than 5 tenants active and in service (with
-- two tenants, average x 2 - own count was the other's exact count).
CREATE OR REPLACE VIEW portal_peer_average_daily SQL SECURITY DEFINER AS
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
HAVING tenants >= 5
SETTINGS join_use_nulls = 0;

-- portal_notices: listed to the tenants the notice mails go to: active and within their contract
-- on the day it was published (in MIMAMORI_TZ), whatever the audience (a tenant whose contract had
-- ended saw every `all` notice).
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
    SELECT tenant_id, locale, active, contract_end FROM tenants FINAL WHERE deleted = 0
) AS t
LEFT JOIN
(
    SELECT tenant_id, groupArray(ifNull(model, '')) AS models, groupArray(ifNull(firmware, '')) AS firmware
    FROM utms FINAL
    WHERE deleted = 0 AND active = 1
    GROUP BY tenant_id
) AS u ON u.tenant_id = t.tenant_id
WHERE n.deleted = 0 AND t.active = 1
  AND (t.contract_end IS NULL OR toDate(ifNull(n.published_at, now64(3)), {tz}) <= t.contract_end)
  AND (n.audience_all = 1
       OR has(n.audience_tenants, t.tenant_id)
       OR ((notEmpty(n.audience_models) OR notEmpty(n.audience_firmware))
           AND arrayExists((m, f) -> (empty(n.audience_models) OR has(n.audience_models, m))
                                     AND (empty(n.audience_firmware) OR has(n.audience_firmware, f)),
                           u.models, u.firmware)))
SETTINGS join_use_nulls = 0;
