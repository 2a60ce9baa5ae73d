-- portal_utm_status: offline_since only while the UTM is offline. 0003 took argMax(offline_since,
-- at), and argMax skips NULLs, so a recovered UTM kept the start of its last outage. The latest
-- change is now taken as one tuple, whose NULLs are kept.
CREATE OR REPLACE VIEW portal_utm_status SQL SECURITY DEFINER AS
SELECT u.tenant_id AS tenant_id, u.utm_id AS utm_id,
       if(s.utm_id = '', 'never_seen', s.status) AS status,
       s.last_seen AS last_seen,
       if(s.status = 'offline', s.offline_since, NULL) AS offline_since,
       u.active AS active
FROM (SELECT utm_id, tenant_id, active FROM utms FINAL WHERE deleted = 0) AS u
LEFT JOIN
(
    SELECT utm_id,
           tupleElement(latest, 1) AS status,
           tupleElement(latest, 2) AS last_seen,
           tupleElement(latest, 3) AS offline_since
    FROM
    (
        SELECT utm_id, argMax(tuple(status, last_seen, offline_since), at) AS latest
        FROM utm_status
        GROUP BY utm_id
    )
) AS s ON s.utm_id = u.utm_id
SETTINGS join_use_nulls = 0;
