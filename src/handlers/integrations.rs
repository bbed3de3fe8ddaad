//! Create, settings and delete: the integration's life cycle as Fleet sees it.

use hyper::body::Incoming;
use hyper::header::ORIGIN;
use hyper::{Request, Response};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{credentials, fields, record_tenant};
use crate::Error;
use crate::ids::Origin;
use crate::input;
use crate::response::Body;
use crate::routes::App;

#[derive(Serialize)]
struct CreateResponse {
    entra_tenant_id: String,
    fleet_server_secret: String,
}

#[derive(Serialize)]
struct SettingsResponse {
    entra_tenant_id: String,
    setup_done: bool,
    admin_consented: bool,
    setup_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_consent_url: Option<String>,
}

/// `POST /api/v1/microsoft-compliance-partner`
pub async fn create(app: &App, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let abandoned = req.extensions().get::<CancellationToken>().cloned();
    let origin = origin(&req)?;
    let fields = fields(app, req).await?;
    let tenant = fields.guid(&input::TENANT_ID)?;
    record_tenant(tenant);

    // Set by the router when the request timeout abandons the request.
    let abandoned = abandoned.unwrap_or_default();
    let created = app.service.create(tenant, origin, abandoned).await?;
    Ok(App::ok(&CreateResponse {
        entra_tenant_id: created.tenant.to_string(),
        fleet_server_secret: created.secret,
    }))
}

/// `GET /api/v1/microsoft-compliance-partner/settings`
pub async fn settings(app: &App, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let fields = fields(app, req).await?;
    let settings = app.service.settings(&credentials(&fields)?).await?;
    Ok(App::ok(&SettingsResponse {
        entra_tenant_id: settings.tenant.to_string(),
        setup_done: settings.setup_done,
        admin_consented: settings.admin_consented,
        setup_error: settings.setup_error,
        admin_consent_url: settings.admin_consent_url,
    }))
}

/// `DELETE /api/v1/microsoft-compliance-partner`
pub async fn delete(app: &App, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let fields = fields(app, req).await?;
    app.service.delete(&credentials(&fields)?).await?;
    Ok(App::ok(&serde_json::json!({})))
}

/// The Fleet server's URL from the `Origin` header, validated for use as a
/// redirect target.
fn origin(req: &Request<Incoming>) -> Result<Origin, Error> {
    let mut values = req.headers().get_all(ORIGIN).iter();
    let value = values.next().ok_or_else(|| {
        Error::BadRequest("the Origin header is missing; it must be the Fleet server's URL".into())
    })?;
    if values.next().is_some() {
        return Err(Error::BadRequest(
            "the Origin header is given more than once".into(),
        ));
    }

    let text = value
        .to_str()
        .map_err(|_| Error::BadRequest("the Origin header is not readable text".into()))?;
    Origin::parse(text)
        .map_err(|e| Error::BadRequest(format!("the Origin header is not a Fleet server URL: {e}")))
}
