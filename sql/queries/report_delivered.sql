SELECT DISTINCT tenant_id
FROM mails
WHERE kind = 'monthly-report' AND sent_at >= %(since)s AND has(%(message_ids)s, message_id)
