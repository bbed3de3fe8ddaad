//! Schema versions, tracked in `PRAGMA user_version`.
//!
//! Version 1 is `schema.sql` at the top of the repository; each later version
//! is one SQL file in `src/store/migrations/`, applied in order. Every version
//! runs in its own transaction together with the bump of `user_version`, so a
//! failed migration leaves the database at the previous version.

use rusqlite::{Connection, TransactionBehavior};

use super::{Store, StoreError};

/// Every schema version in order; index 0 is version 1.
const VERSIONS: &[&str] = &[
    include_str!("../../schema.sql"),
    include_str!("migrations/0002_setup_done_at.sql"),
    include_str!("migrations/0003_ids_never_reused.sql"),
];

/// The schema version this binary writes.
pub const LATEST_VERSION: u32 = VERSIONS.len() as u32;

/// What a migration run found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Migration {
    /// Version of the database before the run.
    pub from: u32,
    /// Version after the run.
    pub to: u32,
}

impl Migration {
    pub fn applied_any(&self) -> bool {
        self.from != self.to
    }
}

impl Store {
    /// Brings the schema to [`LATEST_VERSION`]. Refuses a database written by a
    /// newer binary rather than guessing what its columns mean.
    pub async fn migrate(&self) -> Result<Migration, StoreError> {
        self.write(migrate_connection).await
    }

    /// The database's schema version, without changing anything.
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        self.run(|conn| Ok(user_version(conn)?)).await
    }
}

fn migrate_connection(conn: &mut Connection) -> Result<Migration, StoreError> {
    let from = user_version(conn)?;
    if from > LATEST_VERSION {
        return Err(StoreError::Schema(format!(
            "the database is at version {from}, newer than this binary's {LATEST_VERSION}; \
             upgrade compliance-proxy"
        )));
    }

    for (index, sql) in VERSIONS.iter().enumerate().skip(from as usize) {
        let version = index as u32 + 1;

        // IMMEDIATE takes the write lock up front, so two processes starting at
        // once apply each version exactly once: the second waits, then sees the
        // bumped version inside its own transaction.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if user_version(&tx)? >= version {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }

    Ok(Migration {
        from,
        to: user_version(conn)?,
    })
}

fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database left at version 1 by an older binary.
    fn at_version_1() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(VERSIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn
    }

    fn insert(conn: &Connection, tenant: &str, setup_done: bool, updated_at: i64) {
        conn.execute(
            "INSERT INTO integrations (tenant_id, origin, secret_hash, setup_done, created_at, \
             updated_at) VALUES (?1, 'https://fleet.example.com', x'00', ?2, 100, ?3)",
            rusqlite::params![tenant, setup_done, updated_at],
        )
        .unwrap();
    }

    #[test]
    fn version_2_dates_setup_of_rows_already_set_up() {
        let mut conn = at_version_1();
        insert(&conn, "done", true, 1_700_000_000);
        insert(&conn, "pending", false, 1_700_000_500);

        let migration = migrate_connection(&mut conn).unwrap();
        assert_eq!(
            migration,
            Migration {
                from: 1,
                to: LATEST_VERSION
            }
        );

        let dated = |tenant: &str| -> Option<i64> {
            conn.query_row(
                "SELECT setup_done_at FROM integrations WHERE tenant_id = ?1",
                [tenant],
                |row| row.get(0),
            )
            .unwrap()
        };
        assert_eq!(dated("done"), Some(1_700_000_000));
        assert_eq!(dated("pending"), None);
    }

    #[test]
    fn a_new_database_gets_every_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        let migration = migrate_connection(&mut conn).unwrap();
        assert_eq!(
            migration,
            Migration {
                from: 0,
                to: LATEST_VERSION
            }
        );
        assert_eq!(LATEST_VERSION, 3);
    }

    #[test]
    fn version_3_keeps_every_row_and_never_reuses_an_id() {
        let mut conn = at_version_1();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        insert(&conn, "first", true, 1_700_000_000);
        insert(&conn, "last", false, 1_700_000_500);
        conn.execute(
            "INSERT INTO messages (message_id, integration_id, device_id, status, created_at, \
             updated_at) VALUES ('m', 1, 'd', 'Completed', 1, 1)",
            [],
        )
        .unwrap();

        migrate_connection(&mut conn).unwrap();
        let ids: Vec<(i64, String)> = conn
            .prepare("SELECT id, tenant_id FROM integrations ORDER BY id")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(ids, [(1, "first".to_string()), (2, "last".to_string())]);

        // The largest id, deleted, is not handed out again.
        conn.execute("DELETE FROM integrations WHERE id = 2", [])
            .unwrap();
        insert(&conn, "new", false, 1_700_001_000);
        let new_id: i64 = conn
            .query_row(
                "SELECT id FROM integrations WHERE tenant_id = 'new'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(new_id, 3);

        // The message still belongs to its integration and goes with it.
        conn.execute("DELETE FROM integrations WHERE id = 1", [])
            .unwrap();
        let messages: i64 = conn
            .query_row("SELECT COUNT(*) FROM messages", [], |row| row.get(0))
            .unwrap();
        assert_eq!(messages, 0);
        let problems: i64 = conn
            .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(problems, 0);
    }
}
