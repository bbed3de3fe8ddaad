//! Finding a tenant's Intune partner service URLs through Graph.
//!
//! The partner APIs live on per-region scale units, so their base URLs are
//! read from the endpoints of Intune's service principal in each tenant and
//! cached for a day. The cache entry is dropped when a connection to a cached
//! URL fails, so a tenant that moved is rediscovered on the retry.

use std::time::{Duration, Instant};

use ureq::http::Method;

use super::client::{Base, Call, Client, Endpoints, record_lookup};
use super::encode::odata_filter;
use super::error::{MsError, Op};
use crate::ids::Guid;

/// Discovered URLs are reused for this long.
const DISCOVERY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Application id of Intune's first-party service principal in every tenant.
const INTUNE_APP_ID: &str = "0000000a-0000-0000-c000-000000000000";

const TENANT_SYNC_PROVIDER: &str = "PartnerTenantDataSyncService";
const DEVICE_SYNC_PROVIDER: &str = "PartnerDeviceDataSyncService";

impl Client {
    /// The tenant's partner service URLs, from the cache when fresh.
    pub(crate) fn endpoints(&self, tenant: Guid) -> Result<Endpoints, MsError> {
        let (endpoints, lookup) = self.endpoints.get_or_fetch(&tenant, || {
            let found = self.discover(tenant)?;
            Ok::<_, MsError>((found, Instant::now() + DISCOVERY_TTL))
        })?;
        record_lookup("endpoints", lookup);
        Ok(endpoints)
    }

    /// Drops the tenant's cached URLs, e.g. after Microsoft said the tenant is
    /// not served at them.
    pub(crate) fn forget_endpoints(&self, tenant: Guid) {
        self.endpoints.forget(|t| *t == tenant);
    }

    fn discover(&self, tenant: Guid) -> Result<Endpoints, MsError> {
        let filter = odata_filter("appId", INTUNE_APP_ID);
        let path = format!("/v1.0/servicePrincipals?$filter={filter}");
        let call = Call::new(Op::Discovery, tenant, Method::GET, Base::Graph, path);
        let principal = self.execute(&call)?;
        if !principal.is_success() {
            return Err(principal.error(Op::Discovery));
        }

        let body = principal.json(Op::Discovery)?;
        let id = first_value(&body)
            .and_then(|sp| sp.get("id"))
            .and_then(|id| id.as_str())
            .and_then(Guid::parse)
            .ok_or_else(|| {
                MsError::unexpected(
                    Op::Discovery,
                    "Graph listed no Microsoft Intune service principal in this tenant \
                     (is Intune licensed and set up?)",
                )
            })?;

        let path = format!("/v1.0/servicePrincipals/{id}/endpoints");
        let call = Call::new(Op::Discovery, tenant, Method::GET, Base::Graph, path);
        let listed = self.execute(&call)?;
        if !listed.is_success() {
            return Err(listed.error(Op::Discovery));
        }

        let body = listed.json(Op::Discovery)?;
        Ok(Endpoints {
            tenant_sync: provider_uri(&body, TENANT_SYNC_PROVIDER)?,
            device_sync: provider_uri(&body, DEVICE_SYNC_PROVIDER)?,
        })
    }
}

fn first_value(body: &serde_json::Value) -> Option<&serde_json::Value> {
    body.get("value")?.as_array()?.first()
}

/// The `uri` of the endpoint with this `providerName`, checked to be an
/// absolute http(s) URL and returned without trailing slash.
fn provider_uri(body: &serde_json::Value, provider: &str) -> Result<String, MsError> {
    let endpoints = body.get("value").and_then(|v| v.as_array());
    let uri = endpoints
        .into_iter()
        .flatten()
        .find(|e| e.get("providerName").and_then(|p| p.as_str()) == Some(provider))
        .and_then(|e| e.get("uri"))
        .and_then(|u| u.as_str())
        .ok_or_else(|| {
            MsError::unexpected(
                Op::Discovery,
                format!("Intune lists no {provider} endpoint for this tenant"),
            )
        })?;

    let usable = (uri.starts_with("https://") || uri.starts_with("http://"))
        && !uri.contains(['?', '#', ' '])
        && uri.parse::<ureq::http::Uri>().is_ok();
    if !usable {
        return Err(MsError::unexpected(
            Op::Discovery,
            format!("the {provider} endpoint is not an absolute URL"),
        ));
    }
    Ok(uri.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn picks_providers_by_name() {
        let body = json!({"value": [
            {"providerName": "Other", "uri": "https://other.example"},
            {"providerName": "PartnerTenantDataSyncService", "uri": "https://t.example/T/"},
            {"providerName": "PartnerDeviceDataSyncService", "uri": "https://d.example/D"},
        ]});
        assert_eq!(
            provider_uri(&body, TENANT_SYNC_PROVIDER).unwrap(),
            "https://t.example/T"
        );
        assert_eq!(
            provider_uri(&body, DEVICE_SYNC_PROVIDER).unwrap(),
            "https://d.example/D"
        );
    }

    #[test]
    fn refuses_missing_or_odd_uris() {
        let missing = json!({"value": [{"providerName": "Other", "uri": "https://x"}]});
        assert!(provider_uri(&missing, TENANT_SYNC_PROVIDER).is_err());

        let odd = json!({"value": [{"providerName": TENANT_SYNC_PROVIDER, "uri": "ftp://x"}]});
        assert!(provider_uri(&odd, TENANT_SYNC_PROVIDER).is_err());

        let query =
            json!({"value": [{"providerName": TENANT_SYNC_PROVIDER, "uri": "https://x?a"}]});
        assert!(provider_uri(&query, TENANT_SYNC_PROVIDER).is_err());
    }
}
