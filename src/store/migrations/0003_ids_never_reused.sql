-- Version 3: a row id is never handed out twice.
--
-- Without AUTOINCREMENT, SQLite gives a new row the largest id plus one,
-- which is the id of the row just deleted when that one was the largest.
-- Work that outlives its row and writes by id (a setup whose integration
-- expired, a status poll or a heartbeat of a deleted tenant) would then write
-- into another tenant's new row. SQLite cannot add AUTOINCREMENT to a table,
-- so both tables are rebuilt with their rows, ids and indexes.

CREATE TABLE integrations_v3 (
    id                          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id                   TEXT    NOT NULL UNIQUE,
    origin                      TEXT    NOT NULL,
    secret_hash                 BLOB    NOT NULL,
    consent_nonce               TEXT,
    consent_state_hash          BLOB    UNIQUE,
    consent_expires_at          INTEGER,
    admin_consented             INTEGER NOT NULL DEFAULT 0 CHECK (admin_consented IN (0, 1)),
    provisioned                 INTEGER NOT NULL DEFAULT 0 CHECK (provisioned IN (0, 1)),
    policy_id                   TEXT,
    setup_done                  INTEGER NOT NULL DEFAULT 0 CHECK (setup_done IN (0, 1)),
    setup_error                 TEXT,
    last_heartbeat_at           INTEGER,
    last_heartbeat_attempt_at   INTEGER,
    last_heartbeat_error        TEXT,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL,
    setup_done_at               INTEGER
) STRICT;

INSERT INTO integrations_v3 (
    id, tenant_id, origin, secret_hash, consent_nonce, consent_state_hash,
    consent_expires_at, admin_consented, provisioned, policy_id, setup_done, setup_error,
    last_heartbeat_at, last_heartbeat_attempt_at, last_heartbeat_error, created_at,
    updated_at, setup_done_at
)
SELECT
    id, tenant_id, origin, secret_hash, consent_nonce, consent_state_hash,
    consent_expires_at, admin_consented, provisioned, policy_id, setup_done, setup_error,
    last_heartbeat_at, last_heartbeat_attempt_at, last_heartbeat_error, created_at,
    updated_at, setup_done_at
FROM integrations;

CREATE TABLE messages_v3 (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id          TEXT    NOT NULL UNIQUE,
    integration_id      INTEGER NOT NULL REFERENCES integrations_v3 (id) ON DELETE CASCADE,
    device_id           TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    detail              TEXT,
    poll_location       TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;

INSERT INTO messages_v3 (
    id, message_id, integration_id, device_id, status, detail, poll_location, created_at,
    updated_at
)
SELECT
    id, message_id, integration_id, device_id, status, detail, poll_location, created_at,
    updated_at
FROM messages;

-- Children first, so that dropping the old parent deletes no referenced row.
-- Renaming a table also renames it in the foreign keys that point at it.
DROP TABLE messages;
DROP TABLE integrations;
ALTER TABLE integrations_v3 RENAME TO integrations;
ALTER TABLE messages_v3 RENAME TO messages;

CREATE INDEX integrations_pending ON integrations (setup_done, created_at);
CREATE INDEX messages_integration ON messages (integration_id);
CREATE INDEX messages_created ON messages (created_at);
