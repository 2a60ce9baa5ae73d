ALTER TABLE utms DELETE WHERE has(%(utm_ids)s, utm_id) SETTINGS mutations_sync = 2
