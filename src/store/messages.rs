//! The `messages` table: one row per device report sent to Microsoft.
//!
//! A message is looked up only together with the integration it belongs to,
//! so one tenant can never read another tenant's message by guessing its id.

use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError, cutoff, now};
use crate::ids::Guid;

/// One stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: i64,
    pub message_id: Guid,
    pub device_id: String,
    /// Microsoft's `Status` string as last reported.
    pub status: String,
    pub detail: Option<String>,
    pub poll_location: Option<String>,
    pub created_at: i64,
}

/// What `insert_message` stores.
pub struct NewMessage {
    pub integration_id: i64,
    pub message_id: Guid,
    pub device_id: Guid,
    pub status: String,
    pub detail: Option<String>,
    pub poll_location: Option<String>,
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    let message_id: String = row.get(1)?;
    Ok(Message {
        id: row.get(0)?,
        message_id: Guid::parse(&message_id).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                1,
                rusqlite::types::Type::Text,
                format!("{message_id:?} is not a GUID").into(),
            )
        })?,
        device_id: row.get(2)?,
        status: row.get(3)?,
        detail: row.get(4)?,
        poll_location: row.get(5)?,
        created_at: row.get(6)?,
    })
}

impl Store {
    /// Stores a device report's message.
    ///
    /// Returns false, storing nothing, when the integration is gone: a delete
    /// may land between a request's credential check and this write.
    pub async fn insert_message(&self, new: NewMessage) -> Result<bool, StoreError> {
        self.write(move |conn| {
            let now = now();
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO messages (message_id, integration_id, device_id, status, \
                     detail, poll_location, created_at, updated_at) \
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7 \
                     WHERE EXISTS (SELECT 1 FROM integrations WHERE id = ?2)",
                )?
                .execute(params![
                    new.message_id.to_string(),
                    new.integration_id,
                    new.device_id.to_string(),
                    new.status,
                    new.detail,
                    new.poll_location,
                    now,
                ])?;
            Ok(inserted == 1)
        })
        .await
    }

    /// Removes one message, e.g. one whose upload failed. Returns false when
    /// it was already gone, with its integration if that was deleted.
    pub async fn delete_message(&self, message_id: Guid) -> Result<bool, StoreError> {
        self.write(move |conn| {
            let removed = conn.execute(
                "DELETE FROM messages WHERE message_id = ?1",
                [message_id.to_string()],
            )?;
            Ok(removed == 1)
        })
        .await
    }

    /// The message with this id, if it belongs to the given integration.
    pub async fn message(
        &self,
        integration_id: i64,
        message_id: Guid,
    ) -> Result<Option<Message>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, message_id, device_id, status, detail, poll_location, created_at \
                 FROM messages WHERE message_id = ?1 AND integration_id = ?2",
            )?;
            Ok(stmt
                .query_row(params![message_id.to_string(), integration_id], from_row)
                .optional()?)
        })
        .await
    }

    /// Stores a newer status for a message, and where it was read from.
    pub async fn update_message(
        &self,
        id: i64,
        status: String,
        detail: Option<String>,
        poll_location: Option<String>,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE messages SET status = ?2, detail = ?3, \
                 poll_location = COALESCE(?4, poll_location), updated_at = ?5 WHERE id = ?1",
            )?
            .execute(params![id, status, detail, poll_location, now()])?;
            Ok(())
        })
        .await
    }

    /// How many messages of the integration are in each status.
    pub async fn message_counts(
        &self,
        integration_id: i64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT status, COUNT(*) FROM messages WHERE integration_id = ?1 \
                 GROUP BY status ORDER BY status",
            )?;
            let rows = stmt.query_map([integration_id], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Deletes messages created before `retention` ago; returns how many.
    pub async fn prune_messages(
        &self,
        retention: std::time::Duration,
    ) -> Result<usize, StoreError> {
        self.write(move |conn| {
            Ok(conn.execute(
                "DELETE FROM messages WHERE created_at < ?1",
                [cutoff(now(), retention)],
            )?)
        })
        .await
    }
}
