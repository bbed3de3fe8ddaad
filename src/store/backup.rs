//! Online backups with SQLite's backup API.
//!
//! The copy is made in one step inside one read transaction, so it is a
//! consistent snapshot of every committed row even while `serve` keeps
//! writing: in WAL mode readers do not block writers and writers do not
//! disturb a reader's snapshot. It is written next to the target and renamed
//! into place, so the target path never holds a partial copy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use super::{Store, StoreError};

/// How often a busy or locked source is retried before giving up.
const ATTEMPTS: u32 = 100;

impl Store {
    /// Copies the database to `target`; returns the number of pages copied.
    pub async fn backup_to(&self, target: PathBuf) -> Result<u64, StoreError> {
        self.run(move |conn| copy(conn, &target)).await
    }
}

fn copy(source: &Connection, target: &Path) -> Result<u64, StoreError> {
    let partial = target.with_extension("partial");
    let _ = std::fs::remove_file(&partial);

    let pages = {
        let mut destination = Connection::open(&partial).map_err(|e| {
            StoreError::Backup(format!(
                "could not create {}: {}",
                partial.display(),
                super::open_failure(&e)
            ))
        })?;
        let backup = Backup::new(source, &mut destination)?;
        let mut attempts = 0;
        loop {
            // -1: every page in one step, under one read transaction.
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More => continue,
                StepResult::Busy | StepResult::Locked if attempts < ATTEMPTS => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                StepResult::Busy | StepResult::Locked => {
                    return Err(StoreError::Backup("the database stayed locked".into()));
                }
                _ => continue,
            }
        }
        let pages = backup.progress().pagecount as u64;
        drop(backup);

        let ok: String = destination.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
        if ok != "ok" {
            return Err(StoreError::Backup(format!(
                "the copy failed its check: {ok}"
            )));
        }
        pages
    };

    std::fs::rename(&partial, target)
        .map_err(|e| StoreError::Backup(format!("could not move the backup into place: {e}")))?;
    Ok(pages)
}
