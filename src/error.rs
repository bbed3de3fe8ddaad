//! The service's error type and the one place errors become HTTP statuses.
//!
//! Handlers and the service layer return [`Error`]; [`Error::status`] decides
//! the status code and [`Error::public_message`] the text a client sees.
//! Internal failures (storage, randomness) are shown as a generic sentence and
//! logged once, in full, by the response layer.

use std::time::Duration;

use hyper::StatusCode;

use crate::microsoft::MsError;
use crate::secrets::RandomError;
use crate::store::StoreError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed: a missing or invalid field, bad JSON.
    #[error("{0}")]
    BadRequest(String),
    /// Unknown tenant credentials on a device call.
    #[error("{0}")]
    Unauthorized(String),
    /// A missing or wrong API key; answered with a `WWW-Authenticate` challenge.
    #[error("{0}")]
    ApiKey(String),
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not with this method; `allow` lists the methods.
    #[error("method not allowed; use {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body is in a form we do not read, such as compressed.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The client stopped sending its body.
    #[error("the request body did not arrive within {}", humantime::format_duration(*.0))]
    BodyTimeout(Duration),
    /// Well-formed, but names something Microsoft does not know.
    #[error("{0}")]
    Unprocessable(String),
    /// A Microsoft call failed.
    #[error(transparent)]
    Microsoft(#[from] MsError),
    /// We cannot serve this now; the client may retry later.
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// A failure of ours; never described to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) | Error::ApiKey(_) => StatusCode::UNAUTHORIZED,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Microsoft(e) if e.retry_after().is_some() => StatusCode::SERVICE_UNAVAILABLE,
            Error::Microsoft(_) => StatusCode::BAD_GATEWAY,
            Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The text the client sees.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => {
                "internal error; the operator can find the cause in the logs".to_string()
            }
            other => other.to_string(),
        }
    }

    /// How long the client should wait before retrying, when we know.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Microsoft(e) => e.retry_after(),
            Error::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        Error::Internal(e.to_string())
    }
}

impl From<RandomError> for Error {
    fn from(e: RandomError) -> Error {
        Error::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::microsoft::{ErrorKind, Op};

    #[test]
    fn microsoft_failures_are_502_unless_throttled() {
        let failed = Error::from(MsError {
            op: Op::Upload,
            kind: ErrorKind::Unreachable("connection refused".into()),
        });
        assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(failed.retry_after(), None);

        let throttled = Error::from(MsError {
            op: Op::Upload,
            kind: ErrorKind::Throttled(Duration::from_secs(30)),
        });
        assert_eq!(throttled.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(30)));
    }

    #[test]
    fn internal_errors_are_not_described_to_clients() {
        let e = Error::Internal("database error: disk I/O error at /var/lib/x".into());
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.public_message().contains("/var/lib"));
    }
}
