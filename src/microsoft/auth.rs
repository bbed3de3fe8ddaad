//! Client-credentials tokens from the tenant's Entra authority.
//!
//! One token per (tenant, audience), reused until five minutes before it
//! expires. Errors from the token endpoint are where Entra says the partner
//! application is not consented in a tenant (AADSTS700016), which callers need
//! to tell apart from every other failure.

use std::time::{Duration, Instant};

use ureq::http::Method;

use super::client::{Audience, Base, Call, Client, error_fields};
use super::error::{ErrorKind, MsError, Op};
use crate::ids::Guid;

/// A token is not reused during the last five minutes of its life.
const EXPIRY_MARGIN: Duration = Duration::from_secs(300);

/// AADSTS codes meaning the application is not (or no longer) in the tenant.
const NOT_CONSENTED_CODES: &[&str] = &["AADSTS700016", "AADSTS65001", "AADSTS500011"];

impl Client {
    /// Asks Entra for a new token; returns it with the instant it stops being
    /// reusable.
    pub(crate) fn fetch_token(
        &self,
        tenant: Guid,
        audience: Audience,
    ) -> Result<(String, Instant), MsError> {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("client_secret", self.settings.client_secret.expose())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", audience.scope())
            .finish();
        let call = Call::new(
            Op::Token,
            tenant,
            Method::POST,
            Base::Login,
            format!("/{tenant}/oauth2/v2.0/token"),
        )
        .form(form);

        let reply = self.execute(&call)?;
        if !reply.is_success() {
            return Err(token_error(&reply.body).unwrap_or_else(|| reply.error(Op::Token)));
        }

        let body = reply.json(Op::Token)?;
        let token = body
            .get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| MsError::unexpected(Op::Token, "the answer has no access_token"))?;
        let lifetime = expires_in(&body)
            .ok_or_else(|| MsError::unexpected(Op::Token, "the answer has no valid expires_in"))?;

        let reusable_until = Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN);
        Ok((token.to_string(), reusable_until))
    }
}

/// `expires_in` is a number in v2 answers and a numeric string in v1 ones.
fn expires_in(body: &serde_json::Value) -> Option<Duration> {
    let value = body.get("expires_in")?;
    let seconds = value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))?;
    Some(Duration::from_secs(seconds))
}

/// Recognises "the application is not consented here" among token errors.
fn token_error(body: &str) -> Option<MsError> {
    let (_, description) = error_fields(body);
    let description = description?;
    NOT_CONSENTED_CODES
        .iter()
        .find(|code| description.starts_with(*code))
        .map(|_| MsError::new(Op::Token, ErrorKind::NotConsented(description.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expires_in_may_be_a_number_or_a_string() {
        assert_eq!(
            expires_in(&json!({"expires_in": 3599})),
            Some(Duration::from_secs(3599))
        );
        assert_eq!(
            expires_in(&json!({"expires_in": "3599"})),
            Some(Duration::from_secs(3599))
        );
        assert_eq!(expires_in(&json!({"expires_in": "soon"})), None);
        assert_eq!(expires_in(&json!({"expires_in": -5})), None);
        assert_eq!(expires_in(&json!({})), None);
    }

    #[test]
    fn aadsts700016_means_not_consented() {
        let body = r#"{"error":"unauthorized_client","error_description":
            "AADSTS700016: Application with identifier 'x' was not found in the directory 'y'."}"#;
        let err = token_error(body).unwrap();
        assert!(err.is_not_consented());

        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid."}"#;
        assert!(token_error(body).is_none());
    }
}
