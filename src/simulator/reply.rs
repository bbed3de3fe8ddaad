//! Answers of the simulated Microsoft, in the shapes Microsoft uses.
//!
//! Every handler returns a [`Reply`]; only [`Reply::into_response`] turns one
//! into a hyper response. The error builders here are the single place that
//! knows the three error shapes: Graph's `{"error":{"code","message"}}` (also
//! used for the Intune partner services), the OAuth token endpoint's
//! `{"error","error_description":"AADSTS…"}`, and small HTML pages for the
//! browser-facing consent endpoint.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::odata::random_guid;

/// The authority named in Graph's `WWW-Authenticate` challenge.
const LOGIN: &str = "https://login.microsoftonline.com/common/oauth2/authorize";

/// What a handler wants sent back; converted to a hyper response at the edge.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: String,
}

/// Handlers return `Err(reply)` for early exits, so `?` reads naturally.
pub(crate) type Handled = Result<Reply, Reply>;

impl Reply {
    /// A JSON body with the given status.
    pub(crate) fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json; charset=utf-8".to_owned())],
            body: value.to_string(),
        }
    }

    /// `204 No Content`.
    pub(crate) fn no_content() -> Reply {
        Reply {
            status: 204,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    /// A small HTML page, the way login.microsoftonline.com talks to browsers.
    pub(crate) fn html(status: u16, title: &str, text: &str) -> Reply {
        let body = format!(
            "<!DOCTYPE html>\n<html><head><title>{t}</title></head>\
             <body><h1>{t}</h1><p>{x}</p></body></html>\n",
            t = escape_html(title),
            x = escape_html(text),
        );
        Reply {
            status,
            headers: vec![("content-type", "text/html; charset=utf-8".to_owned())],
            body,
        }
    }

    /// `302 Found` to `location`, with a short page for clients that show it.
    pub(crate) fn redirect(location: String) -> Reply {
        let mut reply = Reply::html(302, "Redirecting", "Returning to the application.");
        reply.headers.push(("location", location));
        reply
    }

    /// A Graph-style error (also what the simulated Intune services send).
    ///
    /// A 401 carries `WWW-Authenticate` like Graph's does.
    pub(crate) fn graph_error(status: u16, code: &str, message: &str) -> Reply {
        let body = json!({"error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": now_rfc3339(),
                "request-id": random_guid(),
                "client-request-id": random_guid(),
            },
        }});
        let mut reply = Reply::json(status, &body);
        if status == 401 {
            let challenge = format!(
                "Bearer realm=\"\", error=\"invalid_token\", authorization_uri=\"{LOGIN}\""
            );
            reply.headers.push(("www-authenticate", challenge));
        }
        reply
    }

    /// An OAuth error from the token endpoint; `aadsts` is the numeric code
    /// that also opens `error_description`, as Entra writes it.
    pub(crate) fn oauth_error(status: u16, error: &str, aadsts: u32, text: &str) -> Reply {
        let trace_id = random_guid();
        let correlation_id = random_guid();
        let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
        let description = format!(
            "AADSTS{aadsts}: {text} Trace ID: {trace_id} Correlation ID: {correlation_id} \
             Timestamp: {timestamp}"
        );
        let body = json!({
            "error": error,
            "error_description": description,
            "error_codes": [aadsts],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        });
        let mut reply = Reply::json(status, &body);
        if status == 401 {
            reply.headers.push((
                "www-authenticate",
                "Bearer error=\"invalid_client\"".to_owned(),
            ));
        }
        reply
    }

    /// The same reply with one more header.
    pub(crate) fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// Converts to a hyper response.
    ///
    /// Header values can come from requests (a `redirect_uri` echoed into
    /// `Location`); one that is not a valid header value turns the answer into
    /// a 500 instead of a panic.
    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = Response::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() = status;
        for (name, value) in self.headers {
            match HeaderValue::from_str(&value) {
                Ok(value) => {
                    response
                        .headers_mut()
                        .append(HeaderName::from_static(name), value);
                }
                Err(_) => {
                    let text = format!("the simulator could not encode the {name} header");
                    return Reply::graph_error(500, "InternalServerError", &text).into_response();
                }
            }
        }
        response
    }
}

/// Graph's standard error code and message for a status the fault injector
/// was told to answer.
pub(crate) fn graph_fault(status: u16) -> Reply {
    let (code, message) = match status {
        400 => ("BadRequest", "Simulated bad request."),
        401 => (
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        ),
        403 => (
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ),
        404 => ("Request_ResourceNotFound", "Resource does not exist."),
        409 => (
            "Conflict",
            "The request conflicts with the current state of the resource.",
        ),
        429 => (
            "TooManyRequests",
            "Too many requests. Please retry after a while.",
        ),
        500 => ("InternalServerError", "Simulated internal server error."),
        502 => ("BadGateway", "Simulated bad gateway."),
        503 => ("ServiceUnavailable", "Service is temporarily unavailable."),
        504 => ("GatewayTimeout", "Simulated gateway timeout."),
        _ => ("UnknownError", "Simulated failure."),
    };
    Reply::graph_error(status, code, message)
}

/// The token endpoint's OAuth error for a status the fault injector was told
/// to answer.
pub(crate) fn oauth_fault(status: u16) -> Reply {
    let (error, aadsts, text) = match status {
        400 => ("invalid_request", 900144, "Simulated invalid request."),
        401 => ("invalid_client", 7000215, "Invalid client secret provided."),
        403 => ("unauthorized_client", 50105, "Simulated access denial."),
        404 => ("invalid_tenant", 90002, "Tenant not found."),
        429 => (
            "temporarily_unavailable",
            50196,
            "Simulated request throttling.",
        ),
        500..=599 => (
            "temporarily_unavailable",
            90033,
            "A transient error has occurred.",
        ),
        _ => ("invalid_request", 90014, "Simulated failure."),
    };
    Reply::oauth_error(status, error, aadsts, text)
}

/// The current time as Graph writes it in error bodies.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
