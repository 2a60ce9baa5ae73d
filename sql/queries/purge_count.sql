SELECT count() AS n FROM {table} WHERE tenant_id = %(tenant)s
