-- The customer portal (issue 23): its accounts, and the detections behind "詳細を確認".
--
-- portal_accounts: one row per change of an account; the latest (highest version) is the account.
-- Every portal replica reads and writes it, so a second replica needs no store of its own. The
-- password is an argon2id hash, the TOTP secret is encrypted with a key from MIMAMORI_PORTAL_KEY
-- (empty when not enrolled). `login` is the user id typed at login: a temporary one until the
-- customer chooses its own. No TTL: an account lives until disabled or its tenant is purged.
CREATE TABLE IF NOT EXISTS portal_accounts
(
    account_id String,
    tenant_id String,
    login String,
    email String,
    password_hash String,
    temporary UInt8,
    temporary_until Nullable(DateTime64(3, 'UTC')),
    totp_secret String,
    totp_decided UInt8,
    failures UInt16,
    locked_until Nullable(DateTime64(3, 'UTC')),
    disabled UInt8,
    session_epoch UInt32,
    created_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY account_id;

-- portal_detections: each threat detection (av, ips, url) of the 90 days the events are kept, with
-- what made the judgement, for the customer's own list of every detection and an alert's evidence.
CREATE VIEW IF NOT EXISTS portal_detections SQL SECURITY DEFINER AS
SELECT tenant_id, utm_id, event_id, ts, type, action, direction, src_ip, dst_ip, src_mac, dst_mac,
       signature, threat_category, url, domain, file_name, alert_id
FROM events
WHERE type IN ('av', 'ips', 'url');
