SELECT version, name, checksum, tz, applied_at
FROM schema_migrations
ORDER BY version
