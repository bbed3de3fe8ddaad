//! One change at a time per tenant.
//!
//! Create, delete and the setup after consent each change both what Microsoft
//! holds for a tenant and what we record of it. Interleaved, they can leave
//! the two apart: a delete that lands while setup is provisioning removes the
//! row before setup marks it provisioned, and the tenant stays provisioned at
//! Microsoft with nothing here that would ever deprovision it. So each of them
//! holds the tenant's lock for its whole run. Device reports and status polls
//! change neither and take no lock.
//!
//! The locks live in this process; one `serve` process owns a database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

use crate::ids::Guid;

type Lock = Arc<tokio::sync::Mutex<()>>;

/// A lock per tenant, made on first use and forgotten when no one holds it.
#[derive(Clone, Default)]
pub(super) struct TenantLocks {
    held: Arc<Mutex<HashMap<Guid, Lock>>>,
}

/// The tenant's turn; ends when dropped.
pub(super) struct TenantTurn {
    tenant: Guid,
    held: Arc<Mutex<HashMap<Guid, Lock>>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl TenantLocks {
    /// Waits until no other change to `tenant` is running.
    pub(super) async fn lock(&self, tenant: Guid) -> TenantTurn {
        let lock = {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            held.entry(tenant).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        TenantTurn {
            tenant,
            held: self.held.clone(),
            guard: Some(guard),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

impl Drop for TenantTurn {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        self.guard.take();
        // Every waiter holds a clone of the lock, and a new one can only be
        // taken under the map's mutex, held here: a count of one means the map
        // is the last holder and the entry can go.
        if held
            .get(&self.tenant)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            held.remove(&self.tenant);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn guid(text: &str) -> Guid {
        Guid::parse(text).unwrap()
    }

    #[tokio::test]
    async fn a_second_change_to_the_same_tenant_waits_for_the_first() {
        let locks = TenantLocks::default();
        let tenant = guid("6f1c2b3a-8d4e-4c5f-9a7b-2e1d0c9b8a76");

        let first = locks.lock(tenant).await;
        let meanwhile = tokio::time::timeout(Duration::from_millis(50), locks.lock(tenant)).await;
        assert!(meanwhile.is_err(), "a second turn began during the first");

        drop(first);
        let second = locks.lock(tenant).await;
        assert_eq!(locks.len(), 1, "the lock stays while it is held");
        drop(second);
        assert_eq!(locks.len(), 0, "a lock no one holds is forgotten");
    }

    #[tokio::test]
    async fn other_tenants_do_not_wait() {
        let locks = TenantLocks::default();
        let _one = locks
            .lock(guid("6f1c2b3a-8d4e-4c5f-9a7b-2e1d0c9b8a76"))
            .await;
        let other = tokio::time::timeout(
            Duration::from_secs(5),
            locks.lock(guid("0c2f5e8a-7b1d-4e3c-8f6a-5d4b3a2c1e0f")),
        )
        .await;
        assert!(other.is_ok(), "a different tenant's turn was held up");
        assert_eq!(locks.len(), 2);
    }
}
