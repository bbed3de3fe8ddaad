//! The flows of the product, written against storage and Microsoft.
//!
//! Each public method is one thing a Fleet server, an admin's browser or the
//! scheduler asks for: register a tenant, hand out the consent link, finish
//! setup after consent, report a device, read an upload's status, remove an
//! integration, run a heartbeat round. Inputs arrive validated (GUIDs,
//! origins) and outputs are plain values; HTTP stays in the handlers.
//!
//! - `integrations`: create, settings, delete, and the credential check;
//! - `setup`: the consent redirect and the setup steps at Microsoft;
//! - `devices`: device reports and upload status;
//! - `heartbeat`: heartbeat rounds and maintenance;
//! - `locks`: one create, delete or setup at a time per tenant.

mod devices;
mod heartbeat;
mod integrations;
mod locks;
mod setup;

use std::sync::Arc;

pub use devices::{DeviceReport, MessageReport, UserRef};
pub use heartbeat::{Maintenance, RoundSummary};
pub use integrations::{Created, Credentials, Deny, Settings};
pub use setup::ConsentCallback;

use crate::config::SetupSettings;
use crate::microsoft::{Microsoft, PartnerUrls, PolicySpec};
use crate::store::Store;

/// Settings of the flows that are known only once the server is bound.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// External base URL of this service, without trailing slash.
    pub public_url: String,
    /// Base of the Entra login endpoints (for the consent link).
    pub login_url: String,
    /// The partner application's client id (for the consent link).
    pub client_id: String,
    pub setup: SetupSettings,
    /// Most heartbeats in flight at once during a round.
    pub heartbeat_concurrency: usize,
}

impl ServiceConfig {
    /// Whether the page URLs registered with Intune are known: the
    /// `heartbeat` subcommand may run without a public URL.
    pub fn partner_urls_known(&self) -> bool {
        !self.public_url.is_empty()
            || (self.setup.enroll_url.is_some() && self.setup.remediate_url.is_some())
    }

    /// The enrollment and remediation pages registered with Intune.
    pub fn partner_urls(&self) -> PartnerUrls {
        let default =
            |page: &str| format!("{}/microsoft-compliance-partner/{page}", self.public_url);
        PartnerUrls {
            enrollment: self
                .setup
                .enroll_url
                .clone()
                .unwrap_or_else(|| default("enroll")),
            remediation: self
                .setup
                .remediate_url
                .clone()
                .unwrap_or_else(|| default("remediate")),
        }
    }

    fn policy(&self) -> PolicySpec {
        PolicySpec {
            display_name: self.setup.policy_name.clone(),
            description: self.setup.policy_description.clone(),
        }
    }

    /// Where Microsoft sends the admin's browser after consent.
    pub fn consent_redirect_uri(&self) -> String {
        format!(
            "{}/api/v1/microsoft-compliance-partner/adminconsent",
            self.public_url
        )
    }
}

/// The service; cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Service {
    store: Store,
    microsoft: Microsoft,
    config: Arc<ServiceConfig>,
    locks: locks::TenantLocks,
}

impl Service {
    pub fn new(store: Store, microsoft: Microsoft, config: ServiceConfig) -> Service {
        Service {
            store,
            microsoft,
            config: Arc::new(config),
            locks: locks::TenantLocks::default(),
        }
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Sets the gauges that are read from storage, just before a scrape.
    pub async fn update_gauges(&self) -> Result<(), crate::Error> {
        let (pending, set_up, oldest_heartbeat) = self.store.integration_counts().await?;
        crate::metrics::integrations(pending, set_up, oldest_heartbeat);
        Ok(())
    }

    /// Whether the database answers; for `/readyz`.
    pub async fn ready(&self) -> Result<(), crate::Error> {
        Ok(self.store.ping().await?)
    }
}
