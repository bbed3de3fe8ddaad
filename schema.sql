-- compliance-proxy database schema, version 1.
--
-- Applied by `compliance-proxy migrate` (and by `serve` at start-up) inside one
-- transaction that also sets PRAGMA user_version = 1. Later versions live in
-- src/store/migrations/ and are applied in order after this one.
--
-- Times are Unix seconds (UTC). GUIDs are stored lower-case, hyphenated.

-- One row per Entra tenant a Fleet server registered.
CREATE TABLE integrations (
    id                          INTEGER PRIMARY KEY,
    tenant_id                   TEXT    NOT NULL UNIQUE,
    -- The Fleet server's URL (scheme://host[:port]); the redirect target after consent.
    origin                      TEXT    NOT NULL,
    -- SHA-256 of the fleet_server_secret, which is shown once and never stored.
    secret_hash                 BLOB    NOT NULL,
    -- The consent state is derived from the secret and this nonce; only its hash
    -- is kept, for the lookup when Microsoft redirects the admin back.
    consent_nonce               TEXT,
    consent_state_hash          BLOB    UNIQUE,
    consent_expires_at          INTEGER,
    admin_consented             INTEGER NOT NULL DEFAULT 0 CHECK (admin_consented IN (0, 1)),
    -- Whether the tenant was provisioned at Microsoft, so delete knows to deprovision.
    provisioned                 INTEGER NOT NULL DEFAULT 0 CHECK (provisioned IN (0, 1)),
    policy_id                   TEXT,
    setup_done                  INTEGER NOT NULL DEFAULT 0 CHECK (setup_done IN (0, 1)),
    setup_error                 TEXT,
    -- Last successful heartbeat, and the error of the latest attempt if it failed.
    last_heartbeat_at           INTEGER,
    last_heartbeat_attempt_at   INTEGER,
    last_heartbeat_error        TEXT,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL
) STRICT;

-- Pending integrations are counted and expired by age.
CREATE INDEX integrations_pending ON integrations (setup_done, created_at);

-- One row per device report; macOS reports are polled until terminal.
CREATE TABLE messages (
    id                  INTEGER PRIMARY KEY,
    message_id          TEXT    NOT NULL UNIQUE,
    integration_id      INTEGER NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    device_id           TEXT    NOT NULL,
    -- Microsoft's Status string, exactly as it was last reported.
    status              TEXT    NOT NULL,
    detail              TEXT,
    -- Where the upload's status was last read (the tenant's device sync URL).
    poll_location       TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;

CREATE INDEX messages_integration ON messages (integration_id);
CREATE INDEX messages_created ON messages (created_at);
