//! Heartbeat rounds and the maintenance that runs with them.
//!
//! A round sends one heartbeat to every set-up tenant with bounded
//! concurrency. One tenant failing never stops the others; each outcome is
//! stored on its integration, and the round ends with one summary line.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::Error;
use crate::store::{TenantSummary, now};

use super::Service;

/// How a heartbeat round went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundSummary {
    pub tenants: usize,
    pub succeeded: usize,
    pub failed: usize,
}

/// What a maintenance pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Maintenance {
    pub messages_pruned: usize,
    pub pending_expired: usize,
    /// Expired integrations kept because their tenant could not be
    /// deprovisioned (or no public URL is configured to do it).
    pub expired_kept: usize,
}

impl Service {
    /// Sends one heartbeat to every set-up tenant.
    pub async fn heartbeat_round(&self) -> Result<RoundSummary, Error> {
        let started = Instant::now();
        let tenants = self.store.set_up_tenants().await?;
        let permits = Arc::new(Semaphore::new(self.config.heartbeat_concurrency.max(1)));
        let mut running = JoinSet::new();

        for tenant in &tenants {
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let service = self.clone();
            let tenant = *tenant;
            running.spawn(async move {
                let ok = service.heartbeat_one(tenant).await;
                drop(permit);
                ok
            });
        }

        let mut summary = RoundSummary {
            tenants: tenants.len(),
            ..RoundSummary::default()
        };
        while let Some(joined) = running.join_next().await {
            match joined {
                Ok(true) => summary.succeeded += 1,
                // A panicked task counts as a failed tenant, not a failed round.
                Ok(false) | Err(_) => summary.failed += 1,
            }
        }

        tracing::info!(
            tenants = summary.tenants,
            succeeded = summary.succeeded,
            failed = summary.failed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "heartbeat round finished"
        );
        Ok(summary)
    }

    /// Sends and records one tenant's heartbeat; true when it succeeded.
    async fn heartbeat_one(&self, tenant: TenantSummary) -> bool {
        let result = self.microsoft.heartbeat(tenant.tenant).await;
        let ok = result.is_ok();
        if let Err(e) = &result {
            tracing::warn!(tenant = %tenant.tenant, error = %e, "heartbeat failed");
        }

        let outcome = result.map_err(|e| e.to_string());
        if let Err(e) = self.store.record_heartbeat(tenant.id, now(), outcome).await {
            tracing::error!(tenant = %tenant.tenant, error = %e, "could not record heartbeat");
        }
        ok
    }

    /// Prunes old messages and expires integrations that stayed pending.
    pub async fn maintain(&self) -> Result<Maintenance, Error> {
        let setup = &self.config.setup;
        let messages_pruned = self.store.prune_messages(setup.message_retention).await?;
        let unprovisioned = self.store.expire_pending(setup.pending_ttl).await?;
        let (deprovisioned, expired_kept) = self.expire_provisioned().await?;

        let done = Maintenance {
            messages_pruned,
            pending_expired: unprovisioned + deprovisioned,
            expired_kept,
        };
        tracing::info!(
            messages_pruned = done.messages_pruned,
            pending_expired = done.pending_expired,
            expired_kept = done.expired_kept,
            "maintenance finished"
        );
        Ok(done)
    }

    /// Deprovisions and deletes stale pending integrations whose setup failed
    /// after provisioning the tenant, so that Microsoft is not left pointing
    /// at us for a tenant we forgot. One that cannot be deprovisioned now is
    /// kept for the next pass. Returns how many were removed and kept.
    async fn expire_provisioned(&self) -> Result<(usize, usize), Error> {
        let ttl = self.config.setup.pending_ttl;
        let stale = self.store.expired_provisioned(ttl).await?;
        if stale.is_empty() {
            return Ok((0, 0));
        }
        if !self.config.partner_urls_known() {
            // Intune is sent the page URLs again on deprovisioning.
            for kept in &stale {
                tracing::warn!(
                    tenant = %kept.tenant,
                    "expired pending integration kept: its tenant is provisioned at Microsoft, \
                     and deprovisioning it needs COMPLIANCE_PROXY_PUBLIC_URL (--public-url), \
                     or both --enroll-url and --remediate-url"
                );
            }
            return Ok((0, stale.len()));
        }

        let (mut expired, mut kept) = (0, 0);
        for stale in stale {
            // A create or consent for the tenant may be under way; it decides
            // first, and the row is read again under the lock.
            let _turn = self.locks.lock(stale.tenant).await;
            let current = self.store.integration_by_tenant(stale.tenant).await?;
            let Some(integration) =
                current.filter(|i| i.id == stale.id && i.provisioned && self.pending_expired(i))
            else {
                continue;
            };

            let tenant = integration.tenant;
            let deprovisioned = match self.deprovision(&integration).await {
                Ok(deprovisioned) => deprovisioned,
                Err(e) => {
                    let why = "could not deprovision an expired integration; kept";
                    tracing::warn!(%tenant, error = %e, "{why}");
                    kept += 1;
                    continue;
                }
            };
            self.store.delete_integration(integration.id).await?;
            self.microsoft.forget_tenant(tenant);
            tracing::info!(%tenant, deprovisioned, "expired pending integration deleted");
            expired += 1;
        }
        Ok((expired, kept))
    }
}
