ALTER TABLE {table} DELETE WHERE tenant_id = %(tenant)s SETTINGS mutations_sync = 2
