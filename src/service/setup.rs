//! Microsoft's consent redirect and the setup that follows it.
//!
//! The consent state is what authenticates the redirect: it is single-use,
//! bound to one integration and its tenant, and expires. Once it is consumed
//! the setup runs: provision the tenant, create (or find) our compliance
//! policy, find the Entra group, assign the policy to it. Each step is safe to
//! repeat, so a failed setup is retried simply by following a fresh consent
//! link.

use crate::Error;
use crate::ids::Guid;
use crate::secrets;
use crate::store::{Integration, SetupOutcome, now};

use super::Service;

/// The exact `setup_error` text Fleet's UI looks for when consent is refused.
pub const CONSENT_REFUSED: &str = "A Microsoft Entra admin did not consent to the permissions \
     requested by the conditional access integration.";

/// The query Microsoft redirects the admin's browser with.
#[derive(Debug, Default)]
pub struct ConsentCallback {
    pub tenant: Option<String>,
    pub state: Option<String>,
    pub admin_consent: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl Service {
    /// Handles the consent redirect; returns where to send the browser next.
    pub async fn consent_callback(&self, callback: ConsentCallback) -> Result<String, Error> {
        let state = callback
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::BadRequest("the state parameter is missing".into()))?;
        let tenant = match callback.tenant.as_deref().filter(|t| !t.is_empty()) {
            Some(text) => Some(consent_tenant(text)?),
            None if callback.error.is_some() => None,
            None => return Err(Error::BadRequest("the tenant parameter is missing".into())),
        };

        let state_hash = secrets::digest(state);
        let found = self.integration_for_state(state_hash, tenant).await?;
        if found.setup_done {
            // A second link followed after (or while) the first one set the
            // tenant up: there is nothing left to do but show Fleet's page.
            return Ok(fleet_page(&found));
        }

        // Held through the setup, so that a delete or create of the tenant
        // waits for it, and so does a second consent link. The row is read
        // again once it is ours: a setup that ran meanwhile may have finished
        // it, and a row deleted or replaced meanwhile no longer has the state.
        let _turn = self.locks.lock(found.tenant).await;
        let integration = self.integration_for_state(state_hash, tenant).await?;
        let fleet_page = fleet_page(&integration);
        if integration.setup_done {
            return Ok(fleet_page);
        }

        if let Some(error) = &callback.error {
            let consumed = self
                .store
                .consume_consent_state(
                    integration.id,
                    state_hash,
                    false,
                    Some(CONSENT_REFUSED.into()),
                )
                .await?;
            if !consumed {
                return Err(unknown_state());
            }
            let code: String = error.chars().take(64).collect();
            tracing::info!(tenant = %integration.tenant, %code, "admin consent refused");
            return Ok(fleet_page);
        }

        let approved = callback
            .admin_consent
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if !approved {
            return Err(Error::BadRequest(
                "the admin_consent=True parameter is missing".into(),
            ));
        }

        if !self
            .store
            .consume_consent_state(integration.id, state_hash, true, None)
            .await?
        {
            return Err(unknown_state());
        }
        tracing::info!(tenant = %integration.tenant, "admin consent received; running setup");
        self.run_setup(&integration).await?;
        Ok(fleet_page)
    }

    /// The integration a live state belongs to, checked against the tenant
    /// Microsoft reported. Its setup may be done already.
    async fn integration_for_state(
        &self,
        state_hash: secrets::Digest,
        tenant: Option<Guid>,
    ) -> Result<Integration, Error> {
        let integration = self
            .store
            .integration_by_state(state_hash)
            .await?
            .ok_or_else(unknown_state)?;

        let live = integration.consent_expires_at.is_some_and(|at| at > now());
        let same_tenant = tenant.is_none_or(|t| t == integration.tenant);
        if !live || !same_tenant || self.pending_expired(&integration) {
            return Err(unknown_state());
        }
        Ok(integration)
    }

    /// Runs every setup step and records the outcome on the integration.
    async fn run_setup(&self, integration: &Integration) -> Result<(), Error> {
        let tenant = integration.tenant;
        let outcome = match self.setup_steps(integration).await {
            Ok(policy_id) => SetupOutcome::Done { policy_id },
            Err(StepError::Internal(e)) => return Err(e),
            Err(StepError::Failed(error)) => SetupOutcome::Failed { error },
        };
        let recorded = self
            .store
            .finish_setup(integration.id, outcome.clone())
            .await?;
        if !recorded {
            // Only another process (a `heartbeat` run's maintenance) can
            // remove a provisioned integration without waiting for us.
            tracing::warn!(%tenant, "integration removed during its setup");
            return Err(expired_during_setup());
        }

        match outcome {
            SetupOutcome::Done { policy_id } => tracing::info!(%tenant, %policy_id, "setup done"),
            SetupOutcome::Failed { error } => tracing::warn!(%tenant, %error, "setup failed"),
        }
        Ok(())
    }

    async fn setup_steps(&self, integration: &Integration) -> Result<Guid, StepError> {
        let tenant = integration.tenant;
        let ms = &self.microsoft;

        ms.provision(tenant, self.config.partner_urls()).await?;
        if !self
            .store
            .mark_provisioned(integration.id)
            .await
            .map_err(Error::from)?
        {
            // The integration expired while Microsoft worked, and nothing
            // else will ever know that the tenant is provisioned: undo it.
            tracing::warn!(%tenant, "integration expired during its setup; deprovisioning");
            if let Err(e) = ms.deprovision(tenant, self.config.partner_urls()).await {
                let why = "could not deprovision the tenant of an expired integration";
                tracing::error!(%tenant, error = %e, "{why}");
            }
            ms.forget_tenant(tenant);
            return Err(StepError::Internal(expired_during_setup()));
        }

        let policy = ms.ensure_policy(tenant, self.config.policy()).await?;

        let group_name = &self.config.setup.group_name;
        let group = ms
            .find_group(tenant, group_name.clone())
            .await?
            .ok_or_else(|| {
                StepError::Failed(format!(
                    "No \"{group_name}\" Entra ID group was found on this Entra tenant."
                ))
            })?;

        ms.assign_policy(tenant, policy, group).await?;
        Ok(policy)
    }
}

/// A setup step either failed at Microsoft (recorded for the admin) or here.
enum StepError {
    Failed(String),
    Internal(Error),
}

impl From<crate::microsoft::MsError> for StepError {
    fn from(e: crate::microsoft::MsError) -> StepError {
        StepError::Failed(sentence(&e.to_string()))
    }
}

/// Starts the text with a capital letter: `setup_error` is shown as a sentence.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl From<Error> for StepError {
    fn from(e: Error) -> StepError {
        StepError::Internal(e)
    }
}

/// Where the admin's browser goes once consent is handled: the settings page
/// of the Fleet server that registered the tenant, and nowhere else.
fn fleet_page(integration: &Integration) -> String {
    format!(
        "{}/settings/integrations/conditional-access",
        integration.origin
    )
}

/// The tenant Microsoft reports in the redirect, which must name one.
fn consent_tenant(text: &str) -> Result<Guid, Error> {
    match Guid::parse(text) {
        Some(guid) if guid.is_nil() => Err(Error::BadRequest(
            "the tenant parameter is the all-zero GUID, which names nothing".into(),
        )),
        Some(guid) => Ok(guid),
        None => Err(Error::BadRequest(
            "the tenant parameter is not a GUID".into(),
        )),
    }
}

fn expired_during_setup() -> Error {
    Error::NotFound(
        "the integration expired while its setup ran; connect the tenant again from Fleet".into(),
    )
}

fn unknown_state() -> Error {
    Error::NotFound("this consent link is unknown, expired or already used".into())
}
