//! Talking to Microsoft: Entra tokens, Graph, and Intune's partner APIs.
//!
//! [`Client`] is blocking (ureq) and owns the caches and retry policy;
//! [`Microsoft`] is the async face the rest of the service uses, running each
//! call on tokio's blocking pool. Nothing here knows about SQL or about our
//! own HTTP server, and nothing outside sees a ureq type.
//!
//! Layout:
//! - `client`: the HTTP core, retries, base URLs;
//! - `auth`: client-credentials tokens;
//! - `discovery`: the tenant's partner service URLs;
//! - `tenant`: provisioning, policy, group, assignment, heartbeat;
//! - `device`: user lookup, upload, upload status, Windows update;
//! - `encode`: how caller input is put into URLs;
//! - `cache`: the single-flight expiring cache;
//! - `resolve`: host name resolution without a thread per call;
//! - `error`: readable errors.

mod auth;
mod cache;
mod client;
mod device;
mod discovery;
mod encode;
mod error;
mod resolve;
mod tenant;

use std::sync::Arc;

pub use client::Client;
pub use device::{DeviceRecord, UploadStatus, WindowsDevice};
pub use error::{ErrorKind, MsError, Op};
pub use tenant::{PartnerUrls, PolicySpec};

use crate::config::MicrosoftSettings;
use crate::ids::Guid;

/// The async handle to the Microsoft client; cheap to clone.
#[derive(Clone)]
pub struct Microsoft {
    client: Arc<Client>,
    /// One permit per call in flight: a slow Microsoft then queues calls
    /// here instead of taking every thread of the blocking pool, which the
    /// database needs too.
    permits: Arc<tokio::sync::Semaphore>,
}

impl Microsoft {
    pub fn new(settings: MicrosoftSettings) -> Microsoft {
        let permits = Arc::new(tokio::sync::Semaphore::new(settings.max_calls.max(1)));
        Microsoft {
            client: Arc::new(Client::new(settings)),
            permits,
        }
    }

    /// Runs one blocking operation on tokio's blocking pool.
    ///
    /// If the worker panics, only this call fails: the panic becomes an
    /// error for the request that caused it, and the caches stay usable.
    async fn run<T, F>(&self, op: Op, work: F) -> Result<T, MsError>
    where
        T: Send + 'static,
        F: FnOnce(&Client) -> Result<T, MsError> + Send + 'static,
    {
        let client = self.client.clone();
        let started = std::time::Instant::now();
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the call semaphore is never closed");
        let result = tokio::task::spawn_blocking(move || {
            // Held until the call ends, even if the caller stops waiting.
            let _permit = permit;
            work(&client)
        })
        .await
        .unwrap_or_else(|_| Err(MsError::new(op, ErrorKind::Worker)));

        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind.name(),
        };
        crate::metrics::microsoft_call(op.name(), outcome, started.elapsed());
        result
    }

    pub async fn provision(&self, tenant: Guid, urls: PartnerUrls) -> Result<(), MsError> {
        self.run(Op::Provision, move |c| {
            c.set_provisioned(tenant, true, &urls)
        })
        .await
    }

    pub async fn deprovision(&self, tenant: Guid, urls: PartnerUrls) -> Result<(), MsError> {
        self.run(Op::Deprovision, move |c| {
            c.set_provisioned(tenant, false, &urls)
        })
        .await
    }

    pub async fn ensure_policy(&self, tenant: Guid, spec: PolicySpec) -> Result<Guid, MsError> {
        self.run(Op::CreatePolicy, move |c| c.ensure_policy(tenant, &spec))
            .await
    }

    pub async fn find_group(&self, tenant: Guid, name: String) -> Result<Option<Guid>, MsError> {
        self.run(Op::FindGroup, move |c| c.find_group(tenant, &name))
            .await
    }

    pub async fn assign_policy(
        &self,
        tenant: Guid,
        policy: Guid,
        group: Guid,
    ) -> Result<(), MsError> {
        self.run(Op::AssignPolicy, move |c| {
            c.assign_policy(tenant, policy, group)
        })
        .await
    }

    pub async fn heartbeat(&self, tenant: Guid) -> Result<(), MsError> {
        self.run(Op::Heartbeat, move |c| c.heartbeat(tenant)).await
    }

    pub async fn user_id(&self, tenant: Guid, upn: String) -> Result<Option<Guid>, MsError> {
        // A cached id needs no worker thread: most pushes end here.
        if let Some(id) = self.client.cached_user_id(tenant, &upn) {
            return Ok(Some(id));
        }
        self.run(Op::LookUpUser, move |c| c.user_id(tenant, &upn))
            .await
    }

    pub async fn upload(
        &self,
        tenant: Guid,
        message_id: Guid,
        device: DeviceRecord,
    ) -> Result<(), MsError> {
        self.run(Op::Upload, move |c| c.upload(tenant, message_id, &device))
            .await
    }

    pub async fn upload_status(
        &self,
        tenant: Guid,
        message_id: Guid,
    ) -> Result<UploadStatus, MsError> {
        self.run(Op::UploadStatus, move |c| {
            c.upload_status(tenant, message_id)
        })
        .await
    }

    pub async fn update_windows_device(
        &self,
        tenant: Guid,
        device: WindowsDevice,
    ) -> Result<bool, MsError> {
        self.run(Op::UpdateWindowsDevice, move |c| {
            c.update_windows_device(tenant, &device)
        })
        .await
    }

    /// Drops every cached token, URL and user id of the tenant.
    pub fn forget_tenant(&self, tenant: Guid) {
        self.client.forget_tenant(tenant);
    }
}
