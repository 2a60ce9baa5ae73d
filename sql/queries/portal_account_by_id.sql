SELECT account_id, tenant_id, login, email, password_hash, temporary, temporary_until, totp_secret, totp_decided,
       failures, locked_until, disabled, session_epoch, created_at, version
FROM portal_accounts FINAL
WHERE account_id = %(account)s
ORDER BY disabled, version DESC
LIMIT 1
