//! One function per endpoint: decode, call the service, encode.
//!
//! Handlers see requests and build responses; the flows themselves live in
//! `service`. They never touch SQL or Microsoft directly, and they return
//! [`Error`] for every failure so that `error` alone decides statuses.

pub mod consent;
pub mod devices;
pub mod integrations;
pub mod pages;

use hyper::body::Incoming;
use hyper::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{HeaderMap, Request};

use crate::Error;
use crate::ids::Guid;
use crate::input::{self, Fields};
use crate::routes::App;
use crate::service::Credentials;

/// The request's inputs: its query string and, if any, its body.
async fn fields(app: &App, req: Request<Incoming>) -> Result<Fields, Error> {
    let mut fields = Fields::from_query(req.uri().query());

    // Refuse a declared oversize body before reading any of it.
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > app.body_limit as u64) {
        return Err(Error::PayloadTooLarge {
            limit: app.body_limit,
        });
    }

    refuse_content_coding(req.headers())?;
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| Error::BadRequest("the Content-Type header is not readable text".into()))?;
    let read = input::read_body(req.into_body(), app.body_limit);
    let body = tokio::time::timeout(app.body_timeout, read)
        .await
        .map_err(|_| Error::BodyTimeout(app.body_timeout))??;
    fields.add_body(content_type.as_deref(), &body)?;
    Ok(fields)
}

/// Refuses a body with a content coding other than `identity`. We decode
/// none, and a compressed body read as plain text would only fail later as
/// "not valid JSON", which hides what the client has to change.
fn refuse_content_coding(headers: &HeaderMap) -> Result<(), Error> {
    for value in headers.get_all(CONTENT_ENCODING) {
        let codings = value.to_str().map_err(|_| {
            Error::BadRequest("the Content-Encoding header is not readable text".into())
        })?;
        let coded = codings
            .split(',')
            .map(str::trim)
            .find(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"));
        if let Some(coding) = coded {
            return Err(Error::UnsupportedMediaType(format!(
                "Content-Encoding {} is not supported; send the body uncompressed",
                coding.chars().take(64).collect::<String>()
            )));
        }
    }
    Ok(())
}

/// The tenant id and secret every tenant-scoped call carries.
fn credentials(fields: &Fields) -> Result<Credentials, Error> {
    let tenant = fields.guid(&input::TENANT_ID)?;
    record_tenant(tenant);
    Ok(Credentials {
        tenant,
        secret: fields.required_string(&input::SECRET)?,
    })
}

/// Adds the tenant to the request's span, for the log line that ends it.
fn record_tenant(tenant: Guid) {
    tracing::Span::current().record("tenant", tracing::field::display(tenant));
}
