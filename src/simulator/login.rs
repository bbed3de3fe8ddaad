//! The login.microsoftonline.com stand-in: the admin-consent page and the
//! client-credentials token endpoint.
//!
//! Consent is what makes a tenant usable: until an admin has visited the
//! consent page for the partner application, token requests for that tenant
//! fail with AADSTS700016, as they do at Microsoft.

use serde_json::{Value, json};

use super::fault::InBand;
use super::odata::{append_query, is_absolute_http_url, normalize_guid};
use super::reply::{Handled, Reply};
use super::request::Incoming;
use super::state::{Audience, Shared};

/// The Graph scope a client-credentials request may ask for.
const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// The Intune scope; the double slash is right, since the resource id is
/// `https://api.manage.microsoft.com/` and `/.default` is appended to it.
const INTUNE_SCOPE: &str = "https://api.manage.microsoft.com//.default";
/// The single-slash Intune scope, which Entra also resolves.
const INTUNE_SCOPE_SINGLE_SLASH: &str = "https://api.manage.microsoft.com/.default";

/// `GET /{tenant}/adminconsent?client_id=…&state=…&redirect_uri=…`
///
/// Consents at once (no page to click through) and redirects back with
/// `tenant`, `state` and `admin_consent=True`.
pub(crate) fn admin_consent(
    shared: &Shared,
    request: &Incoming,
    tenant: &str,
    in_band: Option<&InBand>,
) -> Handled {
    let page = |text: &str| Reply::html(400, "Sign in to your account", text);
    let tenant = normalize_guid(tenant)
        .ok_or_else(|| page(&format!("AADSTS90002: Tenant '{tenant}' not found.")))?;
    let client_id = request.param("client_id").unwrap_or_default();
    if client_id != shared.config.client_id {
        return Err(page(&format!(
            "AADSTS700016: Application with identifier '{client_id}' was not found in the \
             directory '{tenant}'."
        )));
    }
    let redirect_uri = request.param("redirect_uri").unwrap_or_default();
    if !is_absolute_http_url(&redirect_uri) {
        return Err(page(&format!(
            "AADSTS50011: The redirect URI '{redirect_uri}' is not an absolute http or https URL."
        )));
    }
    let state = request.param("state");
    let state_pair = state.as_deref().map(|s| ("state", s));

    if in_band == Some(&InBand::ConsentRefused) {
        let mut pairs = vec![
            ("error", "access_denied"),
            (
                "error_description",
                "AADSTS65004: User declined to consent to access the app.",
            ),
        ];
        pairs.extend(state_pair);
        return Ok(Reply::redirect(append_query(&redirect_uri, &pairs)));
    }

    shared.lock().tenant_mut(&tenant).consented = true;
    let mut pairs = vec![("tenant", tenant.as_str())];
    pairs.extend(state_pair);
    pairs.push(("admin_consent", "True"));
    Ok(Reply::redirect(append_query(&redirect_uri, &pairs)))
}

/// `POST /{tenant}/oauth2/v2.0/token` with a client-credentials form.
///
/// `expires_in` and `ext_expires_in` are JSON numbers, as on Microsoft's v2
/// endpoint; the v1 endpoint sends them as strings, which
/// `SimConfig::expires_in_as_string` reproduces.
pub(crate) fn token(
    shared: &Shared,
    request: &Incoming,
    tenant: &str,
    in_band: Option<&InBand>,
) -> Handled {
    let tenant = normalize_guid(tenant).ok_or_else(|| {
        let text = format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct \
                            tenant ID."
        );
        Reply::oauth_error(400, "invalid_request", 90002, &text)
    })?;
    if in_band == Some(&InBand::Aadsts700016) {
        return Err(not_in_directory(&shared.config.client_id, &tenant));
    }
    let form = read_form(request)?;
    let field = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };

    check_client(shared, &tenant, field("client_id"), field("client_secret"))?;
    match field("grant_type") {
        None => return Err(missing("grant_type")),
        Some("client_credentials") => {}
        Some(other) => {
            let text = format!("The provided grant type '{other}' is not supported here.");
            return Err(Reply::oauth_error(
                400,
                "unsupported_grant_type",
                70003,
                &text,
            ));
        }
    }
    let scope = field("scope").ok_or_else(|| missing("scope"))?;
    Ok(issue(shared, &tenant, audience(scope)?, scope))
}

/// The audience of a client-credentials scope.
fn audience(scope: &str) -> Result<Audience, Reply> {
    match scope {
        GRAPH_SCOPE => Ok(Audience::Graph),
        INTUNE_SCOPE | INTUNE_SCOPE_SINGLE_SLASH => Ok(Audience::Intune),
        other => {
            let text = format!(
                "The provided value for scope {other} is not valid. Client credential flows \
                 must have a scope value with /.default suffixed to the resource identifier."
            );
            Err(Reply::oauth_error(400, "invalid_scope", 1002012, &text))
        }
    }
}

/// Reads the form body, refusing other content types and repeated fields.
fn read_form(request: &Incoming) -> Result<Vec<(String, String)>, Reply> {
    if !request.has_content_type("application/x-www-form-urlencoded") {
        let text = "The request body must be application/x-www-form-urlencoded.";
        return Err(Reply::oauth_error(400, "invalid_request", 90014, text));
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&request.body).into_owned().collect();
    for (index, (name, _)) in form.iter().enumerate() {
        if form[..index].iter().any(|(earlier, _)| earlier == name) {
            let text = format!("The parameter '{name}' is duplicated.");
            return Err(Reply::oauth_error(400, "invalid_request", 90015, &text));
        }
    }
    Ok(form)
}

/// Checks the application, the tenant's consent and the secret, in the
/// order Entra does: the app must exist in the tenant before its secret
/// matters.
fn check_client(
    shared: &Shared,
    tenant: &str,
    client_id: Option<&str>,
    secret: Option<&str>,
) -> Result<(), Reply> {
    let config = &shared.config;
    let client_id = client_id.ok_or_else(|| missing("client_id"))?;
    if client_id != config.client_id {
        let text = format!(
            "Invalid client credentials: '{client_id}' is not the simulated partner application."
        );
        return Err(Reply::oauth_error(401, "invalid_client", 7000215, &text));
    }
    if !shared.lock().tenant_mut(tenant).consented {
        return Err(not_in_directory(client_id, tenant));
    }
    match secret {
        None => {
            let text = "The request body must contain the following parameter: \
                        'client_assertion' or 'client_secret'.";
            Err(Reply::oauth_error(401, "invalid_client", 7000218, text))
        }
        Some(secret) if secret != config.client_secret => {
            let text = format!("Invalid client secret provided for app '{client_id}'.");
            Err(Reply::oauth_error(401, "invalid_client", 7000215, &text))
        }
        Some(_) => Ok(()),
    }
}

/// Records and returns a new token.
fn issue(shared: &Shared, tenant: &str, audience: Audience, scope: &str) -> Reply {
    let config = &shared.config;
    let lifetime = config.token_lifetime.as_secs();
    let mut state = shared.lock();
    let token = state.issue_token(tenant, audience, lifetime);
    state.tenant_mut(tenant).token_scopes.push(scope.to_owned());
    let expires: Value = if config.expires_in_as_string {
        Value::String(lifetime.to_string())
    } else {
        Value::from(lifetime)
    };
    let body = json!({
        "token_type": "Bearer",
        "expires_in": expires,
        "ext_expires_in": expires,
        "access_token": token,
    });
    Reply::json(200, &body).with_header("cache-control", "no-store, no-cache".to_owned())
}

/// AADSTS700016: the application has no service principal in the tenant,
/// which is what Entra says when nobody consented (or consent was revoked).
fn not_in_directory(client_id: &str, tenant: &str) -> Reply {
    let text = format!(
        "Application with identifier '{client_id}' was not found in the directory '{tenant}'. \
         This can happen if the application has not been installed by the administrator of the \
         tenant or consented to by any user in the tenant."
    );
    Reply::oauth_error(400, "unauthorized_client", 700016, &text)
}

fn missing(name: &str) -> Reply {
    let text = format!("The request body must contain the following parameter: '{name}'.");
    Reply::oauth_error(400, "invalid_request", 900144, &text)
}
