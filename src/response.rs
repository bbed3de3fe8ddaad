//! Building responses: JSON for Fleet, small HTML pages for browsers.
//!
//! Every response is made by one of these helpers, so the headers that must
//! always be there (content type, `no-store`, `nosniff`) are set in one place.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::Error;

/// The body type of every response we send.
pub type Body = Full<Bytes>;

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(value).expect("response types always serialize");
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    common_headers(headers);
    response
}

/// `{"error": "..."}` with the error's status, plus `Allow` on 405 and
/// `Retry-After` when the client should come back later.
pub fn error_json(error: &Error) -> Response<Body> {
    let mut response = json(
        error.status(),
        &serde_json::json!({ "error": error.public_message() }),
    );
    add_error_headers(&mut response, error);
    response
}

/// A small HTML page; `message` is escaped.
pub fn html(status: StatusCode, title: &str, message: &str) -> Response<Body> {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;\
         padding:0 1em;line-height:1.5;color:#222}}</style></head>\n\
         <body><h1>{title}</h1>\n<p>{message}</p></body></html>\n",
        title = escape(title),
        message = escape(message),
    );
    let mut response = Response::new(Full::new(Bytes::from(page)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    common_headers(headers);
    response
}

/// An HTML error page for a browser-facing route.
pub fn error_html(error: &Error) -> Response<Body> {
    let title = error.status().canonical_reason().unwrap_or("Error");
    let mut message = error.public_message();
    // Error texts are written to follow a colon in JSON; a page shows a sentence.
    if let Some(first) = message.get(..1) {
        message = format!("{}{}", first.to_uppercase(), &message[1..]);
    }
    if !message.ends_with('.') {
        message.push('.');
    }
    let mut response = html(error.status(), title, &message);
    add_error_headers(&mut response, error);
    response
}

/// A 302 to `location`, which the caller built from validated parts.
pub fn redirect(location: &str) -> Result<Response<Body>, Error> {
    let value = HeaderValue::from_str(location).map_err(|_| {
        Error::Internal(format!(
            "redirect target is not a header value: {location:?}"
        ))
    })?;
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::FOUND;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, value);
    // The consent redirect carries a state in its URL; keep it out of referrers.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    common_headers(headers);
    Ok(response)
}

/// Plain text, for the metrics exposition.
pub fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    common_headers(headers);
    response
}

fn common_headers(headers: &mut hyper::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

fn add_error_headers(response: &mut Response<Body>, error: &Error) {
    let headers = response.headers_mut();
    match error {
        Error::MethodNotAllowed { allow } => {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        // Says which credential a 401 is about: the API key, as a bearer
        // token (MS-API-Key is accepted too).
        Error::ApiKey(_) => {
            let challenge = HeaderValue::from_static("Bearer realm=\"compliance-proxy\"");
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        _ => {}
    }
    if let Some(after) = error.retry_after() {
        // Round up: "retry after 0 seconds" would invite a hot loop.
        let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn html_escapes_its_text() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn errors_carry_allow_and_retry_after() {
        let r = error_json(&Error::MethodNotAllowed { allow: "GET" });
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "GET");

        let r = error_json(&Error::Unavailable {
            message: "later".into(),
            retry_after: Some(Duration::from_millis(1500)),
        });
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn redirects_refuse_header_breaking_targets() {
        assert!(redirect("https://fleet.example.com/settings").is_ok());
        assert!(redirect("https://x\r\nSet-Cookie: a=b").is_err());
    }
}
