//! Microsoft's redirect of the admin's browser after the consent page.

use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::Error;
use crate::response::{self, Body};
use crate::routes::App;
use crate::service::ConsentCallback;

/// `GET /api/v1/microsoft-compliance-partner/adminconsent`
///
/// Answers with a redirect to the Fleet server's conditional access settings
/// page, or an HTML error page.
pub async fn callback(app: &App, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let mut callback = ConsentCallback::default();
    for (key, value) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        let slot = match key.as_ref() {
            "tenant" => &mut callback.tenant,
            "state" => &mut callback.state,
            "admin_consent" => &mut callback.admin_consent,
            "error" => &mut callback.error,
            "error_description" => &mut callback.error_description,
            _ => continue,
        };
        if slot.is_some() {
            return Err(Error::BadRequest(format!(
                "the {key} parameter is given more than once"
            )));
        }
        *slot = Some(value.into_owned());
    }

    let next = app.service.consent_callback(callback).await?;
    response::redirect(&next)
}
