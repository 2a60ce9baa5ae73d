-- The events of some UTMs stored in a time range: a worker that restarts after a crash re-reads
-- the input it had not committed, and must not store those events twice. (The batch's own keys are
-- compared in Python: a list of 10,000 keys would exceed max_query_size.)
SELECT concat(utm_id, char(31), event_id) AS stored
FROM events
WHERE ts BETWEEN %(from)s AND %(to)s
  AND utm_id IN (SELECT arrayJoin(%(utms)s))
