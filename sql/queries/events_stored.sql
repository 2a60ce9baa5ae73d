-- Which of a batch's events are already stored: a worker that restarts after a crash re-reads the
-- input it had not committed, and must not store those events twice.
SELECT concat(utm_id, char(31), event_id) AS stored
FROM events
WHERE ts BETWEEN %(from)s AND %(to)s
  AND utm_id IN (SELECT arrayJoin(%(utms)s))
  AND concat(utm_id, char(31), event_id) IN (SELECT arrayJoin(%(keys)s))
