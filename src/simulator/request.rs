//! A received request, fully read, as the simulator's handlers see it.
//!
//! Owns access to the raw path and query (kept exactly as received, still
//! percent-encoded, because the simulator is strict about URL shapes), the
//! form-decoded query parameters, headers, the bearer token and JSON bodies.

use bytes::Bytes;
use hyper::header::{self, HeaderMap};
use hyper::{Method, http::request::Parts};
use serde_json::{Map, Value};

use super::reply::Reply;

/// One request with its body already collected.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) method: Method,
    /// The path as received, still percent-encoded.
    pub(crate) path: String,
    /// The raw query string, without the `?`.
    pub(crate) query: Option<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Incoming {
    pub(crate) fn new(parts: &Parts, body: Bytes) -> Incoming {
        Incoming {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers.clone(),
            body,
        }
    }

    /// The path's segments after the leading `/`, still percent-encoded.
    pub(crate) fn segments(&self) -> Vec<&str> {
        self.path.trim_start_matches('/').split('/').collect()
    }

    /// The query parameters, form-decoded (`+` is a space), in order.
    pub(crate) fn params(&self) -> Vec<(String, String)> {
        let query = self.query.as_deref().unwrap_or_default();
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    /// Every value of query parameter `name`.
    pub(crate) fn param_values(&self, name: &str) -> Vec<String> {
        self.params()
            .into_iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .collect()
    }

    /// The first value of query parameter `name`.
    pub(crate) fn param(&self, name: &str) -> Option<String> {
        self.param_values(name).into_iter().next()
    }

    /// A header's value when it is present and valid text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The token of an `Authorization: Bearer …` header.
    pub(crate) fn bearer(&self) -> Option<&str> {
        let value = self.header(header::AUTHORIZATION.as_str())?;
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    }

    /// True when `Content-Type` names `mime` (parameters such as `charset`
    /// are allowed).
    pub(crate) fn has_content_type(&self, mime: &str) -> bool {
        self.header(header::CONTENT_TYPE.as_str())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(mime))
    }

    /// The body as a JSON object, or a Graph-style 400/415 answer.
    ///
    /// Microsoft's JSON endpoints insist on `Content-Type: application/json`,
    /// so a client that forgets it should find out here.
    pub(crate) fn json_object(&self) -> Result<Map<String, Value>, Reply> {
        if !self.has_content_type("application/json") {
            let text = "The request body must be sent with Content-Type: application/json.";
            return Err(Reply::graph_error(415, "UnsupportedMediaType", text));
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(bad_request("The request body must be a JSON object.")),
            Err(err) => Err(bad_request(&format!(
                "The request body is not valid JSON: {err}."
            ))),
        }
    }

    /// The body as text, invalid UTF-8 replaced, for the request log.
    pub(crate) fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A Graph-style 400 with the given message.
pub(crate) fn bad_request(message: &str) -> Reply {
    Reply::graph_error(400, "BadRequest", message)
}

/// Checks a JSON object's fields: no unknown names, required ones present.
///
/// Microsoft's OData endpoints reject properties they do not know, so a
/// misspelt field name is a 400 rather than silently ignored.
pub(crate) fn check_fields(
    object: &Map<String, Value>,
    allowed: &[&str],
    required: &[&str],
) -> Result<(), String> {
    if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "The property '{unknown}' does not exist on this type."
        ));
    }
    match required.iter().find(|name| !object.contains_key(**name)) {
        Some(missing) => Err(format!("The property '{missing}' is required.")),
        None => Ok(()),
    }
}

/// A field's value, `null` when absent. Indexing a `Map` directly panics on
/// a missing key, which a request must never be able to cause.
pub(crate) fn field<'a>(object: &'a Map<String, Value>, name: &str) -> &'a Value {
    static ABSENT: Value = Value::Null;
    object.get(name).unwrap_or(&ABSENT)
}

/// A string field, or a message naming the field.
pub(crate) fn str_field<'a>(object: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match object.get(name) {
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(format!(
            "The property '{name}' must be a string, not {other}."
        )),
        None => Err(format!("The property '{name}' is required.")),
    }
}

/// A boolean field, or a message naming the field.
pub(crate) fn bool_field(object: &Map<String, Value>, name: &str) -> Result<bool, String> {
    match object.get(name) {
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(other) => Err(format!(
            "The property '{name}' must be a boolean, not {other}."
        )),
        None => Err(format!("The property '{name}' is required.")),
    }
}

/// An RFC 3339 timestamp field, or a message naming the field.
pub(crate) fn time_field(object: &Map<String, Value>, name: &str) -> Result<String, String> {
    let text = str_field(object, name)?;
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(_) => Ok(text.to_owned()),
        Err(_) => Err(format!(
            "The property '{name}' is not an RFC 3339 timestamp: '{text}'."
        )),
    }
}

/// A GUID field (returned in lower case), or a message naming the field.
pub(crate) fn guid_field(object: &Map<String, Value>, name: &str) -> Result<String, String> {
    let text = str_field(object, name)?;
    super::odata::normalize_guid(text)
        .ok_or_else(|| format!("The property '{name}' is not a GUID: '{text}'."))
}
