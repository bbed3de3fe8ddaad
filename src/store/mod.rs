//! Storage: every SQL statement, the connection pool, and the schema versions.
//!
//! The database is one SQLite file in WAL mode, opened through an r2d2 pool.
//! r2d2 and rusqlite are blocking, so every public operation is an `async fn`
//! that moves the whole unit of work, connection checkout included, onto
//! tokio's blocking pool. No rusqlite or r2d2 type leaves this module, and no
//! connection is ever held across an `.await`.

mod backup;
mod integrations;
mod messages;
mod migrate;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

pub use integrations::{CreateOutcome, Integration, NewIntegration, SetupOutcome, TenantSummary};
pub use messages::{Message, NewMessage};
pub use migrate::{LATEST_VERSION, Migration};

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A storage operation failed. These are never shown to Fleet; the edge turns
/// them into a generic 500 and logs the cause.
///
/// Each message already includes its cause, so the causes are not exposed as
/// `source()` as well: printing the error chain would otherwise repeat them
/// (rusqlite's message, then SQLite's code description, once more each).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be opened; the text is SQLite's reason alone, since
    /// every caller names the path.
    #[error("{0}")]
    Open(String),
    #[error("could not get a database connection: {0}")]
    Pool(r2d2::Error),
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error("database worker failed: {0}")]
    Worker(tokio::task::JoinError),
    #[error("database schema: {0}")]
    Schema(String),
    #[error("{0}")]
    Backup(String),
    /// The request the work belonged to was abandoned; nothing was written.
    #[error("the request was abandoned before its change was written")]
    Abandoned,
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> StoreError {
        StoreError::Pool(e)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Sqlite(e)
    }
}

impl From<tokio::task::JoinError> for StoreError {
    fn from(e: tokio::task::JoinError) -> StoreError {
        StoreError::Worker(e)
    }
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<SqliteConnectionManager>,
    /// One permit per pooled connection. Work waits for a connection here,
    /// asynchronously, instead of parking a blocking-pool thread inside
    /// r2d2, so a burst of requests cannot grow the thread pool.
    permits: Arc<Semaphore>,
    /// One writer at a time. SQLite allows only one anyway; queueing writers
    /// here spares them SQLite's busy handler, which sleeps in growing steps
    /// and made contended writes take hundreds of ms. It is taken on the
    /// worker thread, so the queue's turn-over costs no thread hand-off.
    writer: Arc<Mutex<()>>,
}

impl Store {
    /// Opens (creating if needed) the database file with `pool_size` connections.
    ///
    /// This blocks while the first connection is opened, so call it before the
    /// server starts or from a blocking context.
    pub fn open(path: &Path, pool_size: u32) -> Result<Store, StoreError> {
        // The journal mode is a property of the file: set it once, before the
        // pool opens connections in parallel and they race to change it.
        let first = Connection::open(path).map_err(|e| StoreError::Open(open_failure(&e)))?;
        first.busy_timeout(BUSY_TIMEOUT)?;
        let _mode: String =
            first.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        drop(first);

        let manager = SqliteConnectionManager::file(path).with_init(configure_connection);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(pool_size.min(2)))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;
        Ok(Store {
            pool,
            permits: Arc::new(Semaphore::new(pool_size as usize)),
            writer: Arc::new(Mutex::new(())),
        })
    }

    /// Runs `work`, which writes, once no other write of ours is running.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let writer = self.writer.clone();
        self.run(move |conn| {
            // A panic inside a write leaves nothing half-done that the lock
            // protects (SQLite rolls the transaction back), so go on.
            let _turn = writer.lock().unwrap_or_else(PoisonError::into_inner);
            work(conn)
        })
        .await
    }

    /// Runs `work` on the blocking pool with one pooled connection.
    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the connection semaphore is never closed");
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // With a permit a connection is free, but `get` may still block
            // while the pool opens one, so it stays inside the blocking task.
            let mut conn = pool.get()?;
            work(&mut conn)
        })
        .await?
    }

    /// Checks that a connection can be had and answers a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }
}

/// Why SQLite could not open a file, without the path: rusqlite appends the
/// path to its message, and the caller names it already.
pub(crate) fn open_failure(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(code, _) => {
            rusqlite::ffi::code_to_str(code.extended_code).to_string()
        }
        other => other.to_string(),
    }
}

/// Settings every pooled connection gets before first use.
fn configure_connection(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;

    // In WAL mode (set in `Store::open`) readers proceed while one writer
    // commits. `synchronous = NORMAL` keeps the database consistent on power
    // loss but may lose the last few commits; every row here can be recreated
    // by Fleet retrying, and a full fsync per device report would cap
    // throughput at the disk's sync rate.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Every pooled connection has its own page cache, 2 MiB by default; the
    // working set (integrations and recent messages) is far smaller, and the
    // operating system caches the file anyway.
    conn.pragma_update(None, "cache_size", -512)?;
    Ok(())
}

/// The current time as Unix seconds.
pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Converts an age into the Unix time before which rows count as older.
pub(crate) fn cutoff(now: i64, age: Duration) -> i64 {
    now.saturating_sub(i64::try_from(age.as_secs()).unwrap_or(i64::MAX))
}
