//! The `integrations` table: one row per registered Entra tenant.
//!
//! Rows are created pending, gain a consent state when Fleet asks for the
//! consent link, and become `setup_done` once the setup flow succeeds. The
//! functions here are the only writers of that life cycle; each write that
//! depends on a prior read runs inside one `IMMEDIATE` transaction.

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use tokio_util::sync::CancellationToken;

use super::{Store, StoreError, cutoff, now};
use crate::ids::{Guid, Origin};
use crate::secrets::Digest;

/// One integration as stored.
#[derive(Clone, Debug)]
pub struct Integration {
    pub id: i64,
    pub tenant: Guid,
    pub origin: Origin,
    pub secret_hash: Vec<u8>,
    /// Nonce the current consent state was derived from, if one is live.
    pub consent_nonce: Option<String>,
    /// Unix time after which the consent state is refused.
    pub consent_expires_at: Option<i64>,
    pub admin_consented: bool,
    /// Whether the tenant is provisioned at Microsoft (so delete deprovisions).
    pub provisioned: bool,
    pub policy_id: Option<Guid>,
    pub setup_done: bool,
    pub setup_error: Option<String>,
    pub last_heartbeat_at: Option<i64>,
    pub last_heartbeat_error: Option<String>,
    pub last_heartbeat_attempt_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Integration {
    /// Whether a consent state was handed out and is still within its lifetime.
    pub fn has_live_consent_state(&self, now: i64) -> bool {
        self.consent_nonce.is_some() && self.consent_expires_at.is_some_and(|at| at > now)
    }
}

/// What `create_integration` needs to insert a row.
pub struct NewIntegration {
    pub tenant: Guid,
    pub origin: Origin,
    pub secret_hash: Digest,
    /// Pending rows created before this age are expired first.
    pub pending_ttl: std::time::Duration,
    /// Refuse to create when this many rows are already pending.
    pub max_pending: u32,
    /// Set when the request was abandoned (its client was told so): the
    /// transaction then rolls back instead of committing, however long it
    /// waited for the database.
    pub abandoned: CancellationToken,
}

/// The result of trying to register a tenant.
#[derive(Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    /// Inserted; `replaced` says an unfinished row for the tenant was dropped.
    Created { replaced: bool },
    /// The tenant's setup is done; nothing changed.
    AlreadySetUp,
    /// Too many integrations are waiting for setup; nothing changed.
    TooManyPending,
}

/// How a setup run ended, written in one statement.
#[derive(Clone, Debug)]
pub enum SetupOutcome {
    Done { policy_id: Guid },
    Failed { error: String },
}

/// A set-up tenant, as the heartbeat round needs it.
#[derive(Clone, Copy, Debug)]
pub struct TenantSummary {
    pub id: i64,
    pub tenant: Guid,
}

const COLUMNS: &str = "id, tenant_id, origin, secret_hash, consent_nonce, consent_expires_at, \
     admin_consented, provisioned, policy_id, setup_done, setup_error, last_heartbeat_at, \
     last_heartbeat_error, last_heartbeat_attempt_at, created_at, updated_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Integration> {
    let tenant: String = row.get(1)?;
    let policy: Option<String> = row.get(8)?;
    Ok(Integration {
        id: row.get(0)?,
        tenant: parse_guid(1, &tenant)?,
        origin: Origin::from_stored(row.get(2)?),
        secret_hash: row.get(3)?,
        consent_nonce: row.get(4)?,
        consent_expires_at: row.get(5)?,
        admin_consented: row.get(6)?,
        provisioned: row.get(7)?,
        policy_id: policy.map(|p| parse_guid(8, &p)).transpose()?,
        setup_done: row.get(9)?,
        setup_error: row.get(10)?,
        last_heartbeat_at: row.get(11)?,
        last_heartbeat_error: row.get(12)?,
        last_heartbeat_attempt_at: row.get(13)?,
        created_at: row.get(14)?,
        updated_at: row.get(15)?,
    })
}

/// A GUID column that does not hold a GUID means the file was edited by hand
/// or corrupted; report it as a conversion error rather than guessing.
fn parse_guid(column: usize, text: &str) -> rusqlite::Result<Guid> {
    Guid::parse(text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            format!("{text:?} is not a GUID").into(),
        )
    })
}

impl Store {
    /// Registers a tenant: expires stale pending rows, refuses when the tenant
    /// is set up or too many are pending, and replaces an unfinished row.
    pub async fn create_integration(
        &self,
        new: NewIntegration,
    ) -> Result<CreateOutcome, StoreError> {
        self.write(move |conn| create(conn, &new)).await
    }

    pub async fn integration_by_tenant(
        &self,
        tenant: Guid,
    ) -> Result<Option<Integration>, StoreError> {
        self.run(move |conn| {
            let sql = format!("SELECT {COLUMNS} FROM integrations WHERE tenant_id = ?1");
            let mut stmt = conn.prepare_cached(&sql)?;
            Ok(stmt.query_row([tenant.to_string()], from_row).optional()?)
        })
        .await
    }

    /// Every integration, oldest first.
    pub async fn integrations(&self) -> Result<Vec<Integration>, StoreError> {
        self.run(|conn| {
            let sql = format!("SELECT {COLUMNS} FROM integrations ORDER BY created_at, id");
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map([], from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// The integration a consent state (by its digest) was handed out for.
    pub async fn integration_by_state(
        &self,
        state_hash: Digest,
    ) -> Result<Option<Integration>, StoreError> {
        self.run(move |conn| {
            let sql = format!("SELECT {COLUMNS} FROM integrations WHERE consent_state_hash = ?1");
            let mut stmt = conn.prepare_cached(&sql)?;
            Ok(stmt.query_row([&state_hash[..]], from_row).optional()?)
        })
        .await
    }

    /// Offers a freshly minted consent state for an integration and returns
    /// the nonce in effect afterwards: the offered one, or the one another
    /// caller stored first while it is still live, so concurrent `settings`
    /// calls all hand out the same link. `None` when the row is gone.
    pub async fn offer_consent_state(
        &self,
        id: i64,
        nonce: String,
        state_hash: Digest,
        expires_at: i64,
    ) -> Result<Option<String>, StoreError> {
        self.write(move |conn| {
            let now = now();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored = tx.execute(
                "UPDATE integrations SET consent_nonce = ?2, consent_state_hash = ?3, \
                 consent_expires_at = ?4, updated_at = ?5 \
                 WHERE id = ?1 AND (consent_nonce IS NULL OR consent_expires_at <= ?5)",
                params![id, nonce, &state_hash[..], expires_at, now],
            )?;
            let in_effect = if stored == 1 {
                Some(nonce)
            } else {
                tx.query_row(
                    "SELECT consent_nonce FROM integrations WHERE id = ?1",
                    [id],
                    |row| row.get::<_, Option<String>>(0),
                )
                .optional()?
                .flatten()
            };
            tx.commit()?;
            Ok(in_effect)
        })
        .await
    }

    /// Uses up a consent state. Returns false when it was already used (or the
    /// row is gone), so exactly one caller proceeds per state.
    ///
    /// `consented` marks the admin's approval; `error` records a refusal.
    pub async fn consume_consent_state(
        &self,
        id: i64,
        state_hash: Digest,
        consented: bool,
        error: Option<String>,
    ) -> Result<bool, StoreError> {
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE integrations SET consent_nonce = NULL, consent_state_hash = NULL, \
                 consent_expires_at = NULL, admin_consented = admin_consented OR ?3, \
                 setup_error = COALESCE(?4, setup_error), updated_at = ?5 \
                 WHERE id = ?1 AND consent_state_hash = ?2 AND setup_done = 0",
                params![id, &state_hash[..], consented, error, now()],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    /// Notes that the tenant is now provisioned at Microsoft. Returns false
    /// when the integration is gone (it expired while Microsoft worked).
    pub async fn mark_provisioned(&self, id: i64) -> Result<bool, StoreError> {
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE integrations SET provisioned = 1, updated_at = ?2 WHERE id = ?1",
                params![id, now()],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    /// Writes how a setup run ended. Returns false when the integration is
    /// gone.
    pub async fn finish_setup(&self, id: i64, outcome: SetupOutcome) -> Result<bool, StoreError> {
        self.write(move |conn| {
            let (done, policy, error) = match outcome {
                SetupOutcome::Done { policy_id } => (true, Some(policy_id.to_string()), None),
                SetupOutcome::Failed { error } => (false, None, Some(error)),
            };
            // setup_done_at dates a set-up tenant that has had no heartbeat yet.
            let changed = conn.execute(
                "UPDATE integrations SET setup_done = ?2, policy_id = COALESCE(?3, policy_id), \
                 setup_error = ?4, updated_at = ?5, setup_done_at = CASE WHEN ?2 THEN ?5 END \
                 WHERE id = ?1",
                params![id, done, policy, error, now()],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    /// Deletes an integration and, through the foreign key, its messages.
    pub async fn delete_integration(&self, id: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute("DELETE FROM integrations WHERE id = ?1", [id])?;
            Ok(())
        })
        .await
    }

    /// Every tenant whose setup is done, in id order.
    pub async fn set_up_tenants(&self) -> Result<Vec<TenantSummary>, StoreError> {
        self.run(|conn| {
            tenant_summaries(
                conn,
                "SELECT id, tenant_id FROM integrations WHERE setup_done = 1",
                [],
            )
        })
        .await
    }

    /// Stores the outcome of one tenant's heartbeat at time `at`.
    pub async fn record_heartbeat(
        &self,
        id: i64,
        at: i64,
        result: Result<(), String>,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            let (ok_at, error) = match result {
                Ok(()) => (Some(at), None),
                Err(e) => (None, Some(e)),
            };
            conn.execute(
                "UPDATE integrations SET last_heartbeat_at = COALESCE(?2, last_heartbeat_at), \
                 last_heartbeat_attempt_at = ?3, last_heartbeat_error = ?4 WHERE id = ?1",
                params![id, ok_at, at, error],
            )?;
            Ok(())
        })
        .await
    }

    /// How many integrations are pending and how many are set up, and the
    /// oldest last successful heartbeat among set-up tenants, where a tenant
    /// without one counts from when its setup was done (`None` without
    /// set-up tenants).
    pub async fn integration_counts(&self) -> Result<(u64, u64, Option<i64>), StoreError> {
        // created_at is there only for a set-up row that nothing dated; it
        // errs old, so the staleness alert fires rather than stays quiet.
        self.run(|conn| {
            Ok(conn.query_row(
                "SELECT COUNT(*) FILTER (WHERE setup_done = 0), \
                 COUNT(*) FILTER (WHERE setup_done = 1), \
                 MIN(COALESCE(last_heartbeat_at, setup_done_at, created_at)) \
                 FILTER (WHERE setup_done = 1) \
                 FROM integrations",
                [],
                |row| {
                    let pending: i64 = row.get(0)?;
                    let set_up: i64 = row.get(1)?;
                    Ok((pending as u64, set_up as u64, row.get(2)?))
                },
            )?)
        })
        .await
    }

    /// Pending integrations past `pending_ttl` that are provisioned at
    /// Microsoft, which `expire_pending` leaves for a deprovision first.
    pub async fn expired_provisioned(
        &self,
        pending_ttl: std::time::Duration,
    ) -> Result<Vec<TenantSummary>, StoreError> {
        self.run(move |conn| {
            tenant_summaries(
                conn,
                "SELECT id, tenant_id FROM integrations \
                 WHERE setup_done = 0 AND provisioned = 1 AND created_at < ?1",
                [cutoff(now(), pending_ttl)],
            )
        })
        .await
    }

    /// Deletes integrations that stayed pending since before `pending_ttl` ago.
    pub async fn expire_pending(
        &self,
        pending_ttl: std::time::Duration,
    ) -> Result<usize, StoreError> {
        self.write(move |conn| Ok(expire(conn, cutoff(now(), pending_ttl))?))
            .await
    }
}

/// Runs `sql`, which selects `id, tenant_id`, into tenant summaries.
fn tenant_summaries(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<TenantSummary>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, |row| {
        let tenant: String = row.get(1)?;
        Ok(TenantSummary {
            id: row.get(0)?,
            tenant: parse_guid(1, &tenant)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes stale pending integrations that Microsoft holds nothing for; a
/// provisioned one (its setup failed after provisioning) is left for the
/// service to deprovision first.
fn expire(conn: &Connection, before: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM integrations WHERE setup_done = 0 AND provisioned = 0 AND created_at < ?1",
        [before],
    )
}

fn create(conn: &mut Connection, new: &NewIntegration) -> Result<CreateOutcome, StoreError> {
    let now = now();
    let tenant = new.tenant.to_string();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;

    expire(&tx, cutoff(now, new.pending_ttl))?;

    let existing: Option<(i64, bool, bool)> = tx
        .query_row(
            "SELECT id, setup_done, provisioned FROM integrations WHERE tenant_id = ?1",
            [&tenant],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    // A replaced row's `provisioned` describes the tenant at Microsoft, which
    // the new row inherits, so that its delete still deprovisions.
    let (replaced, provisioned) = match existing {
        Some((_, true, _)) => return Ok(CreateOutcome::AlreadySetUp),
        Some((id, false, provisioned)) => {
            tx.execute("DELETE FROM integrations WHERE id = ?1", [id])?;
            (true, provisioned)
        }
        None => (false, false),
    };

    // Expired rows still here are provisioned ones waiting for maintenance to
    // deprovision them; they no longer wait for consent, so they do not count.
    let pending: u32 = tx.query_row(
        "SELECT COUNT(*) FROM integrations WHERE setup_done = 0 AND created_at >= ?1",
        [cutoff(now, new.pending_ttl)],
        |row| row.get(0),
    )?;
    if pending >= new.max_pending {
        return Ok(CreateOutcome::TooManyPending);
    }

    tx.execute(
        "INSERT INTO integrations (tenant_id, origin, secret_hash, provisioned, created_at, \
         updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![
            tenant,
            new.origin.as_str(),
            &new.secret_hash[..],
            provisioned,
            now
        ],
    )?;
    if new.abandoned.is_cancelled() {
        return Err(StoreError::Abandoned);
    }
    tx.commit()?;
    Ok(CreateOutcome::Created { replaced })
}
