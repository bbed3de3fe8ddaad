//! The heartbeat schedule inside `serve`.
//!
//! Sleeps until the next time the cron schedule names, runs a heartbeat round
//! and the maintenance pass, and repeats until the server shuts down. Times
//! are UTC. A round that fails as a whole (the database is gone) is logged
//! and the schedule goes on.

use chrono::Utc;
use tokio::sync::watch;

use crate::service::Service;

/// Runs rounds on `schedule` until `stop` changes or is dropped.
pub async fn run(schedule: cron::Schedule, service: Service, mut stop: watch::Receiver<bool>) {
    loop {
        let Some(next) = schedule.upcoming(Utc).next() else {
            tracing::warn!("the heartbeat schedule names no future time; no more rounds");
            return;
        };
        tracing::info!(next = %next.to_rfc3339(), "next heartbeat round scheduled");

        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }

        match service.heartbeat_round().await {
            Ok(summary) => crate::metrics::heartbeat_round(summary.succeeded, summary.failed),
            Err(e) => tracing::error!(error = %e, "heartbeat round could not run"),
        }
        if let Err(e) = service.maintain().await {
            tracing::error!(error = %e, "maintenance could not run");
        }
    }
}
