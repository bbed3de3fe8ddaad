//! Registering a tenant, reading its status and consent link, removing it.
//!
//! Also the credential check every tenant-scoped call starts with: the
//! integration is found by tenant id and the presented secret is compared in
//! constant time with the stored digest.

use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::ids::{Guid, Origin};
use crate::secrets;
use crate::store::{CreateOutcome, Integration, NewIntegration, cutoff, now};

use super::Service;

/// A tenant id and the Fleet server secret presented with it.
pub struct Credentials {
    pub tenant: Guid,
    pub secret: String,
}

/// How an endpoint answers unknown credentials: settings and delete say 404
/// (Fleet then cleans up locally), device calls say 401.
#[derive(Clone, Copy, Debug)]
pub enum Deny {
    NotFound,
    Unauthorized,
}

impl Deny {
    /// The answer to credentials that match no live integration.
    pub(super) fn error(self) -> Error {
        match self {
            Deny::NotFound => {
                Error::NotFound("no integration with this tenant id and secret".into())
            }
            Deny::Unauthorized => {
                Error::Unauthorized("unknown tenant id or wrong fleet server secret".into())
            }
        }
    }
}

/// A new integration: the secret is shown this once.
#[derive(Debug)]
pub struct Created {
    pub tenant: Guid,
    pub secret: String,
}

/// An integration's status, as settings reports it.
#[derive(Debug)]
pub struct Settings {
    pub tenant: Guid,
    pub setup_done: bool,
    pub admin_consented: bool,
    pub setup_error: Option<String>,
    /// Present whenever setup is not done.
    pub admin_consent_url: Option<String>,
}

impl Service {
    /// Registers a tenant for the Fleet server at `origin`. Nothing is
    /// written once `abandoned` is cancelled.
    pub async fn create(
        &self,
        tenant: Guid,
        origin: Origin,
        abandoned: CancellationToken,
    ) -> Result<Created, Error> {
        // A setup still running for a pending integration finishes first; its
        // outcome decides between replacing the row and a conflict.
        let _turn = self.locks.lock(tenant).await;
        let secret = secrets::random_token()?;
        let outcome = self
            .store
            .create_integration(NewIntegration {
                tenant,
                origin: origin.clone(),
                secret_hash: secrets::digest(&secret),
                pending_ttl: self.config.setup.pending_ttl,
                max_pending: self.config.setup.max_pending,
                abandoned,
            })
            .await?;

        match outcome {
            CreateOutcome::Created { replaced } => {
                tracing::info!(%tenant, %origin, replaced, "integration created");
                Ok(Created { tenant, secret })
            }
            CreateOutcome::AlreadySetUp => Err(Error::Conflict(format!(
                "an integration for tenant {tenant} is already set up; delete it first"
            ))),
            CreateOutcome::TooManyPending => {
                // Logged once, as the refused request.
                Err(Error::Unavailable {
                    message: "too many integrations are waiting for admin consent; \
                              try again later"
                        .into(),
                    retry_after: Some(std::time::Duration::from_secs(3600)),
                })
            }
        }
    }

    /// The integration's status and, until setup is done, the consent link.
    ///
    /// The consent state stays the same across calls until it is used or
    /// expires, so a consent page that is already open keeps working.
    pub async fn settings(&self, credentials: &Credentials) -> Result<Settings, Error> {
        let integration = self.authenticate(credentials, Deny::NotFound).await?;

        let admin_consent_url = if integration.setup_done {
            None
        } else {
            let state = self
                .consent_state(&integration, &credentials.secret)
                .await?;
            Some(self.consent_url(integration.tenant, &state))
        };

        Ok(Settings {
            tenant: integration.tenant,
            setup_done: integration.setup_done,
            admin_consented: integration.admin_consented,
            setup_error: integration.setup_error,
            admin_consent_url,
        })
    }

    /// Removes an integration, deprovisioning it at Microsoft first when it
    /// was provisioned there.
    pub async fn delete(&self, credentials: &Credentials) -> Result<(), Error> {
        // A setup still running finishes first, so whatever it provisioned is
        // known here and deprovisioned.
        let _turn = self.locks.lock(credentials.tenant).await;
        let integration = self.authenticate(credentials, Deny::NotFound).await?;
        let tenant = integration.tenant;

        if let Err(e) = self.deprovision(&integration).await {
            tracing::warn!(%tenant, error = %e, "deprovisioning failed; integration kept");
            return Err(e);
        }

        self.store.delete_integration(integration.id).await?;
        self.microsoft.forget_tenant(tenant);
        tracing::info!(%tenant, "integration deleted");
        Ok(())
    }

    /// Deprovisions the integration's tenant at Microsoft if it was
    /// provisioned there; true when Microsoft was told. A tenant that revoked
    /// its consent has nothing left to deprovision, which counts as done.
    pub(super) async fn deprovision(&self, integration: &Integration) -> Result<bool, Error> {
        if !integration.provisioned {
            return Ok(false);
        }

        let tenant = integration.tenant;
        match self
            .microsoft
            .deprovision(tenant, self.config.partner_urls())
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_consented() => {
                let why = "not consented any more; nothing to deprovision";
                tracing::warn!(%tenant, error = %e, "{why}");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The integration the credentials belong to, or `deny`'s error.
    ///
    /// Integrations whose setup stayed pending past their lifetime count as
    /// gone even before maintenance deletes them.
    pub(super) async fn authenticate(
        &self,
        credentials: &Credentials,
        deny: Deny,
    ) -> Result<Integration, Error> {
        let found = self.store.integration_by_tenant(credentials.tenant).await?;

        match found {
            Some(integration)
                if secrets::verify(&credentials.secret, &integration.secret_hash)
                    && !self.pending_expired(&integration) =>
            {
                Ok(integration)
            }
            _ => Err(deny.error()),
        }
    }

    /// Whether the integration is still waiting for setup past its lifetime;
    /// such an integration counts as gone even before maintenance deletes it.
    pub(super) fn pending_expired(&self, integration: &Integration) -> bool {
        !integration.setup_done
            && integration.created_at < cutoff(now(), self.config.setup.pending_ttl)
    }

    /// The live consent state of the integration, minting one if needed.
    async fn consent_state(
        &self,
        integration: &Integration,
        secret: &str,
    ) -> Result<String, Error> {
        let now = now();
        if integration.has_live_consent_state(now)
            && let Some(nonce) = &integration.consent_nonce
        {
            return Ok(secrets::consent_state(secret, nonce));
        }

        let nonce = secrets::random_token()?;
        let state = secrets::consent_state(secret, &nonce);
        let ttl = i64::try_from(self.config.setup.consent_ttl.as_secs()).unwrap_or(i64::MAX);
        let in_effect = self
            .store
            .offer_consent_state(
                integration.id,
                nonce,
                secrets::digest(&state),
                now.saturating_add(ttl),
            )
            .await?
            .ok_or_else(|| {
                Error::NotFound("no integration with this tenant id and secret".into())
            })?;
        // Another call may have stored its state first; that one is handed out.
        Ok(secrets::consent_state(secret, &in_effect))
    }

    /// `{login}/{tenant}/adminconsent?client_id=…&state=…&redirect_uri=…`
    fn consent_url(&self, tenant: Guid, state: &str) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.config.client_id)
            .append_pair("state", state)
            .append_pair("redirect_uri", &self.config.consent_redirect_uri())
            .finish();
        format!("{}/{tenant}/adminconsent?{query}", self.config.login_url)
    }
}
