//! The static pages for end users, health probes and the metrics scrape.

use hyper::{Response, StatusCode};

use crate::Error;
use crate::response::{self, Body};
use crate::routes::App;

/// `GET /microsoft-compliance-partner/enroll`: where Intune sends a user whose
/// device must be enrolled with the partner.
pub fn enroll() -> Response<Body> {
    response::html(
        StatusCode::OK,
        "Enroll your device",
        "Your organization uses Fleet to check that devices meet its security policies \
         before they can reach company resources. To continue, enroll this device in your \
         organization's Fleet: open Fleet Desktop from the menu bar (or ask your IT team for \
         the enrollment link), follow the steps to turn on device management, then sign in \
         again.",
    )
}

/// `GET /microsoft-compliance-partner/remediate`: where Intune sends a user
/// whose device was found not compliant.
pub fn remediate() -> Response<Body> {
    response::html(
        StatusCode::OK,
        "Fix your device",
        "This device does not meet your organization's security policies yet, so access to \
         some company resources is blocked. Open Fleet Desktop from the menu bar and select \
         My device to see which policies are failing and how to fix them. Once they pass, \
         Fleet reports the device as compliant; sign in again after a few minutes.",
    )
}

/// `GET /healthz`: the process is up and serving.
pub fn healthz() -> Response<Body> {
    App::ok(&serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers.
pub async fn readyz(app: &App) -> Result<Response<Body>, Error> {
    match app.service.ready().await {
        Ok(()) => Ok(App::ok(&serde_json::json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            Err(Error::Unavailable {
                message: "the database is not available".into(),
                retry_after: None,
            })
        }
    }
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(app: &App) -> Result<Response<Body>, Error> {
    let handle = app
        .metrics
        .as_ref()
        .ok_or_else(|| Error::NotFound("metrics are not enabled in this process".into()))?;
    app.service.update_gauges().await?;
    Ok(response::text(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        crate::metrics::render(handle),
    ))
}
