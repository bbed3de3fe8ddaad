//! Decoding request inputs: every accepted spelling, from the query or the body.
//!
//! Fleet's clients have sent the same fields as camelCase, snake_case and
//! `…ID` spellings, in the query string (GET, DELETE) or a JSON body (POST),
//! chunked or not. [`Fields`] gathers both sources and answers typed lookups
//! by [`Field`], so a handler asks for "the tenant id" and gets either a value
//! or an error that names the field.

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;

use crate::Error;
use crate::ids::Guid;

/// A logical input and every name it may arrive under. `name` is the
/// spelling Fleet's current client uses, and the one errors mention.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    /// The longest text accepted, in bytes of UTF-8, for the free text we
    /// pass on to Microsoft; `None` where the value's form bounds it (GUIDs,
    /// booleans, numbers) or it never leaves the proxy (the secret).
    pub max_bytes: Option<usize>,
}

pub const TENANT_ID: Field = Field {
    name: "entraTenantId",
    aliases: &["entraTenantId", "entra_tenant_id", "entraTenantID"],
    max_bytes: None,
};
pub const SECRET: Field = Field {
    name: "fleetServerSecret",
    aliases: &["fleetServerSecret", "fleet_server_secret"],
    max_bytes: None,
};
pub const MESSAGE_ID: Field = Field {
    name: "messageId",
    aliases: &["messageId", "message_id", "messageID"],
    max_bytes: None,
};
pub const DEVICE_ID: Field = Field {
    name: "deviceId",
    aliases: &["deviceId", "device_id", "deviceID"],
    max_bytes: None,
};
/// Computer and host names are far shorter (a DNS name is at most 253
/// bytes); the bound keeps a runaway value from reaching Microsoft.
pub const DEVICE_NAME: Field = Field {
    name: "deviceName",
    aliases: &["deviceName", "device_name"],
    max_bytes: Some(1024),
};
/// Platform names (`macOS`, `Windows`) are a handful of bytes.
pub const OS: Field = Field {
    name: "os",
    aliases: &["os"],
    max_bytes: Some(256),
};
/// Version strings (`15.3.1`, `10.0.26100.4061`) are a few dozen bytes.
pub const OS_VERSION: Field = Field {
    name: "osVersion",
    aliases: &["osVersion", "os_version"],
    max_bytes: Some(256),
};
pub const COMPLIANT: Field = Field {
    name: "compliant",
    aliases: &["compliant"],
    max_bytes: None,
};
pub const LAST_CHECK_IN: Field = Field {
    name: "lastCheckInTime",
    aliases: &["lastCheckInTime", "last_check_in_time"],
    max_bytes: None,
};
pub const MANAGED: Field = Field {
    name: "deviceManagementState",
    aliases: &["deviceManagementState", "device_management_state"],
    max_bytes: None,
};
/// A UPN has an email address's form: at most 64 bytes before the `@` and a
/// domain name of at most 253 (RFC 5321, RFC 1035). The bound is in bytes
/// because the UPN goes percent-encoded into the Graph lookup's URL, three
/// bytes for each of its own: 3 KiB at most, which leaves room for the token
/// in the 8 KiB request head the Microsoft client allows (`microsoft::client`).
/// A longer head fails the call as if Microsoft had answered garbage.
pub const USER_PRINCIPAL_NAME: Field = Field {
    name: "userPrincipalName",
    aliases: &["userPrincipalName", "user_principal_name"],
    max_bytes: Some(1024),
};
pub const USER_ID: Field = Field {
    name: "userId",
    aliases: &["userId", "user_id", "userID"],
    max_bytes: None,
};

/// Deepest JSON nesting accepted. Our inputs are flat objects; the limit keeps
/// a hostile body from costing a deep recursion in the parser.
const MAX_JSON_DEPTH: usize = 16;

/// The deepest nesting of arrays and objects in a JSON text, counting only
/// brackets outside strings. Malformed text gets a number too; the parser
/// reports what is wrong with it.
fn nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// A JSON object's members in order, a repeated key kept each time, so that a
/// key given twice with different values is refused like two spellings that
/// disagree (a map would silently keep the last one).
struct Members(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Members, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }

        deserializer.deserialize_map(Visitor)
    }
}

/// One input value: text from a query string or form, or a JSON value.
#[derive(Clone, Debug, PartialEq)]
enum Raw {
    Text(String),
    Json(Value),
}

/// The inputs of one request.
#[derive(Debug, Default)]
pub struct Fields {
    values: Vec<(String, Raw)>,
}

impl Fields {
    /// Fields from a query string alone.
    pub fn from_query(query: Option<&str>) -> Fields {
        let mut fields = Fields::default();
        fields.add_form(query.unwrap_or("").as_bytes());
        fields
    }

    /// Adds the fields of a body with the given `Content-Type`.
    pub fn add_body(&mut self, content_type: Option<&str>, body: &[u8]) -> Result<(), Error> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }

        let media_type = content_type
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        match media_type.as_str() {
            // Without a Content-Type we assume JSON, which is all Fleet sends.
            "" | "application/json" => self.add_json(body),
            // `curl -d '{…}'` labels a JSON body as a form; no form body of
            // ours starts with a brace, so read it as the JSON it is.
            "application/x-www-form-urlencoded" if body.trim_ascii_start().starts_with(b"{") => {
                self.add_json(body)
            }
            "application/x-www-form-urlencoded" => {
                self.add_form(body);
                Ok(())
            }
            other => Err(Error::BadRequest(format!(
                "unsupported content type {:?}; send application/json",
                other.chars().take(64).collect::<String>()
            ))),
        }
    }

    fn add_form(&mut self, text: &[u8]) {
        for (key, value) in form_urlencoded::parse(text) {
            self.values
                .push((key.into_owned(), Raw::Text(value.into_owned())));
        }
    }

    fn add_json(&mut self, body: &[u8]) -> Result<(), Error> {
        if nesting_depth(body) > MAX_JSON_DEPTH {
            return Err(Error::BadRequest(format!(
                "the JSON body is nested more than {MAX_JSON_DEPTH} levels deep"
            )));
        }
        let members: Members = serde_json::from_slice(body).map_err(|e| {
            Error::BadRequest(match e.classify() {
                // Well-formed JSON of another type than an object.
                serde_json::error::Category::Data => "the body must be a JSON object".into(),
                _ => format!("the body is not valid JSON: {e}"),
            })
        })?;
        self.values
            .extend(members.0.into_iter().map(|(k, v)| (k, Raw::Json(v))));
        Ok(())
    }

    /// The field's value under any spelling. Several spellings (or the query
    /// and the body) may carry it only if they agree.
    fn find(&self, field: &Field) -> Result<Option<&Raw>, Error> {
        let mut found: Option<&Raw> = None;
        for (key, value) in &self.values {
            if !field.aliases.contains(&key.as_str()) || matches!(value, Raw::Json(Value::Null)) {
                continue;
            }
            match found {
                Some(previous) if !same_value(previous, value) => {
                    return Err(Error::BadRequest(format!(
                        "{} is given more than once with different values",
                        field.name
                    )));
                }
                _ => found = Some(value),
            }
        }
        Ok(found)
    }

    /// An optional string within the field's bound; JSON non-strings are
    /// refused.
    pub fn string(&self, field: &Field) -> Result<Option<String>, Error> {
        let text = match self.find(field)? {
            None => return Ok(None),
            Some(Raw::Text(text) | Raw::Json(Value::String(text))) => text,
            Some(Raw::Json(_)) => return Err(wrong_type(field, "a string")),
        };
        match field.max_bytes {
            Some(max) if text.len() > max => Err(Error::BadRequest(format!(
                "{} is longer than {max} bytes",
                field.name
            ))),
            _ => Ok(Some(text.clone())),
        }
    }

    /// A string that must be present and not empty.
    pub fn required_string(&self, field: &Field) -> Result<String, Error> {
        match self.string(field)? {
            Some(text) if !text.is_empty() => Ok(text),
            _ => Err(missing(field)),
        }
    }

    /// A required GUID.
    pub fn guid(&self, field: &Field) -> Result<Guid, Error> {
        let text = self.required_string(field)?;
        id(field, &text)
    }

    /// An optional GUID; an empty string counts as absent.
    pub fn optional_guid(&self, field: &Field) -> Result<Option<Guid>, Error> {
        match self.string(field)? {
            Some(text) if !text.is_empty() => id(field, &text).map(Some),
            _ => Ok(None),
        }
    }

    /// An optional boolean: JSON `true`/`false`, or in a query string or
    /// form the text `true`/`false`. A JSON string is the wrong type.
    pub fn bool(&self, field: &Field) -> Result<Option<bool>, Error> {
        let text = match self.find(field)? {
            None => return Ok(None),
            Some(Raw::Json(Value::Bool(b))) => return Ok(Some(*b)),
            Some(Raw::Text(s)) => s,
            Some(Raw::Json(_)) => return Err(wrong_type(field, "a boolean")),
        };
        match text.to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(wrong_type(field, "a boolean")),
        }
    }

    /// An optional whole number: a JSON integer, or in a query string or
    /// form decimal digits. A JSON string is the wrong type.
    pub fn integer(&self, field: &Field) -> Result<Option<i64>, Error> {
        let number = match self.find(field)? {
            None => return Ok(None),
            Some(Raw::Json(Value::Number(n))) => n.as_i64(),
            Some(Raw::Text(s)) => s.trim().parse::<i64>().ok(),
            Some(Raw::Json(_)) => None,
        };
        number
            .map(Some)
            .ok_or_else(|| wrong_type(field, "a whole number"))
    }
}

/// Query text `"true"` and JSON `true` are the same value for our purposes.
fn same_value(a: &Raw, b: &Raw) -> bool {
    let text = |r: &Raw| match r {
        Raw::Text(t) | Raw::Json(Value::String(t)) => Some(t.clone()),
        Raw::Json(Value::Bool(b)) => Some(b.to_string()),
        Raw::Json(Value::Number(n)) => Some(n.to_string()),
        Raw::Json(_) => None,
    };
    match (text(a), text(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

pub fn missing(field: &Field) -> Error {
    Error::BadRequest(format!("{} is missing", field.name))
}

fn wrong_type(field: &Field, expected: &str) -> Error {
    Error::BadRequest(format!("{} must be {expected}", field.name))
}

/// A GUID that names something: Entra never gives the all-zero GUID to a
/// tenant, device or user, and Microsoft uses it to mean "none".
fn id(field: &Field, text: &str) -> Result<Guid, Error> {
    match Guid::parse(text) {
        Some(guid) if guid.is_nil() => Err(Error::BadRequest(format!(
            "{} is the all-zero GUID, which names nothing",
            field.name
        ))),
        Some(guid) => Ok(guid),
        None => Err(not_a_guid(field)),
    }
}

fn not_a_guid(field: &Field) -> Error {
    Error::BadRequest(format!(
        "{} is not a GUID (expected the form 6f1c2b3a-8d4e-4c5f-9a7b-2e1d0c9b8a76)",
        field.name
    ))
}

/// Reads a whole request body, refusing more than `limit` bytes.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, Error>
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(Error::PayloadTooLarge { limit })
        }
        Err(_) => Err(Error::BadRequest(
            "the request body could not be read".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Fields {
        let mut f = Fields::from_query(None);
        f.add_body(Some("application/json"), json.as_bytes())
            .unwrap();
        f
    }

    #[test]
    fn a_key_repeated_in_a_json_body_must_repeat_its_value() {
        let id = "6f1c2b3a-8d4e-4c5f-9a7b-2e1d0c9b8a76";
        let same = body(&format!(
            r#"{{"entraTenantId":"{id}","entraTenantId":"{id}"}}"#
        ));
        assert_eq!(same.guid(&TENANT_ID).unwrap().to_string(), id);

        let other = "0c2f5e8a-7b1d-4e3c-8f6a-5d4b3a2c1e0f";
        let differ = body(&format!(
            r#"{{"entraTenantId":"{id}","entraTenantId":"{other}"}}"#
        ));
        assert!(differ.guid(&TENANT_ID).is_err());
    }

    #[test]
    fn every_spelling_is_found_in_query_and_body() {
        let id = "6f1c2b3a-8d4e-4c5f-9a7b-2e1d0c9b8a76";
        for key in TENANT_ID.aliases {
            let q = Fields::from_query(Some(&format!("{key}={id}")));
            assert_eq!(q.guid(&TENANT_ID).unwrap().to_string(), id);
            let b = body(&format!(r#"{{"{key}":"{id}"}}"#));
            assert_eq!(b.guid(&TENANT_ID).unwrap().to_string(), id);
        }
    }

    #[test]
    fn query_values_are_form_decoded() {
        let q = Fields::from_query(Some("fleetServerSecret=a%2Bb%26c%3Dd+e"));
        assert_eq!(q.required_string(&SECRET).unwrap(), "a+b&c=d e");
    }

    #[test]
    fn conflicting_spellings_are_refused_but_agreeing_ones_pass() {
        let q = Fields::from_query(Some("messageId=a&message_id=b"));
        let err = q.string(&MESSAGE_ID).unwrap_err();
        assert_eq!(
            err.to_string(),
            "messageId is given more than once with different values"
        );

        let mut agree = Fields::from_query(Some("compliant=true"));
        agree.add_body(None, br#"{"compliant":true}"#).unwrap();
        assert_eq!(agree.bool(&COMPLIANT).unwrap(), Some(true));
    }

    #[test]
    fn types_are_checked_with_the_field_named() {
        let b = body(r#"{"compliant":"yes","lastCheckInTime":1.5,"deviceName":7,"os":null}"#);
        assert_eq!(
            b.bool(&COMPLIANT).unwrap_err().to_string(),
            "compliant must be a boolean"
        );
        assert_eq!(
            b.integer(&LAST_CHECK_IN).unwrap_err().to_string(),
            "lastCheckInTime must be a whole number"
        );
        assert_eq!(
            b.string(&DEVICE_NAME).unwrap_err().to_string(),
            "deviceName must be a string"
        );
        assert_eq!(
            b.required_string(&OS).unwrap_err().to_string(),
            "os is missing"
        );
    }

    #[test]
    fn free_text_is_bounded_in_bytes_not_characters() {
        // 259 characters, 1024 bytes; one more byte is too many.
        let at_bound = format!("{}@abc", "\u{1F600}".repeat(255));
        let over = format!("{at_bound}d");
        let query = |upn: &str| {
            let encoded: String = form_urlencoded::byte_serialize(upn.as_bytes()).collect();
            Fields::from_query(Some(&format!("userPrincipalName={encoded}")))
        };
        assert_eq!(
            query(&at_bound).string(&USER_PRINCIPAL_NAME).unwrap(),
            Some(at_bound)
        );
        assert_eq!(
            query(&over)
                .string(&USER_PRINCIPAL_NAME)
                .unwrap_err()
                .to_string(),
            "userPrincipalName is longer than 1024 bytes"
        );

        // The secret never leaves the proxy, so it has no bound of its own.
        let long = "s".repeat(5000);
        let b = body(&format!(r#"{{"fleetServerSecret":"{long}"}}"#));
        assert_eq!(b.required_string(&SECRET).unwrap(), long);
    }

    #[test]
    fn nesting_is_measured_outside_strings() {
        assert_eq!(nesting_depth(br#"{"a":1}"#), 1);
        assert_eq!(nesting_depth(br#"{"a":[{"b":[]}]}"#), 4);
        assert_eq!(nesting_depth(br#"{"a":"[[[[{{{{\"[["}"#), 1);
        assert_eq!(nesting_depth(b"]]]}}}"), 0);

        let deep = format!("{}{}", "[".repeat(17), "]".repeat(17));
        let mut f = Fields::default();
        let err = f
            .add_body(Some("application/json"), deep.as_bytes())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the JSON body is nested more than 16 levels deep"
        );
    }

    #[test]
    fn empty_strings_are_missing_values() {
        let q = Fields::from_query(Some("entraTenantId=&fleetServerSecret="));
        assert_eq!(
            q.guid(&TENANT_ID).unwrap_err().to_string(),
            "entraTenantId is missing"
        );
        assert_eq!(
            q.required_string(&SECRET).unwrap_err().to_string(),
            "fleetServerSecret is missing"
        );
        assert_eq!(q.optional_guid(&USER_ID).unwrap(), None);
    }

    #[test]
    fn bodies_must_be_json_objects_of_a_known_type() {
        let mut f = Fields::default();
        assert!(f.add_body(Some("application/json"), b"[1]").is_err());
        assert!(f.add_body(Some("application/json"), b"{").is_err());
        assert!(f.add_body(Some("text/plain"), b"x=1").is_err());
        assert!(f.add_body(Some("text/plain"), b"  ").is_ok());
        f.add_body(Some("application/x-www-form-urlencoded"), b"os=macOS")
            .unwrap();
        f.add_body(
            Some("Application/JSON; charset=utf-8"),
            br#"{"osVersion":"15"}"#,
        )
        .unwrap();
        assert_eq!(f.required_string(&OS).unwrap(), "macOS");
        assert_eq!(f.required_string(&OS_VERSION).unwrap(), "15");
    }
}
