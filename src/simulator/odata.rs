//! Identifier and OData syntax as the simulated Microsoft reads and writes it.
//!
//! Owns GUID checks, the stable identifiers handed out for directory objects,
//! the partner API's `Entity(guid'…')` key syntax, OData string literals (`'…'`
//! with `''` for a quote) and the one filter form Graph is asked for here,
//! `property eq 'literal'`. Nothing in this file knows about HTTP.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The all-zero GUID Microsoft puts in a policy `Location` when the partner
/// tenant is not really provisioned.
pub(crate) const NULL_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// Everything but RFC 3986 "unreserved" characters gets percent-encoded in the
/// query values the simulator writes into redirect URLs.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// True for the canonical 8-4-4-4-12 hexadecimal form, any letter case.
///
/// Stricter than `uuid::Uuid::parse_str` on purpose: Microsoft's URLs and
/// bodies carry only this form, so braces or the "simple" form are bugs.
pub(crate) fn is_guid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// The GUID in lower case, or `None` when `text` is not a GUID.
pub(crate) fn normalize_guid(text: &str) -> Option<String> {
    is_guid(text).then(|| text.to_ascii_lowercase())
}

/// A fresh random (v4) GUID.
pub(crate) fn random_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A GUID derived from `parts`, the same on every run.
///
/// Directory objects (groups, users, the Intune service principal) keep their
/// ids across `reset()` and across simulator restarts, as they would in a real
/// tenant. Two FNV-1a passes with different offsets fill the 128 bits; the
/// version and variant bits are set like a v4 GUID so that any GUID parser
/// accepts it.
pub(crate) fn stable_guid(parts: &[&str]) -> String {
    let high = fnv1a(0xcbf2_9ce4_8422_2325, parts);
    let low = fnv1a(0x6c62_272e_07bb_0142, parts);
    let high = (high & !0xf000) | 0x4000;
    let low = (low & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let bytes = [high.to_be_bytes(), low.to_be_bytes()].concat();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn fnv1a(offset: u64, parts: &[&str]) -> u64 {
    let mut hash = offset;
    for part in parts {
        // The separator keeps ["ab", "c"] and ["a", "bc"] apart.
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// Reads the key of a partner API segment such as `PartnerTenants(guid'…')`.
///
/// `rest` is what follows the entity-set name. Only the literal form with
/// unencoded parentheses and quotes is accepted: Microsoft rejects the
/// percent-encoded form, and a stray character after the key (a real bug in one
/// Fleet revision) must not slip through. Returns the GUID in lower case or a
/// message for a 400.
pub(crate) fn guid_key(rest: &str) -> Result<String, String> {
    let inner = rest
        .strip_prefix("(guid'")
        .and_then(|r| r.strip_suffix("')"))
        .ok_or_else(|| format!("The key segment '{rest}' is not of the form (guid'<GUID>')"))?;
    normalize_guid(inner).ok_or_else(|| format!("The key '{inner}' is not a valid GUID."))
}

/// Reads an OData string literal: `'text'` with `''` standing for one quote.
pub(crate) fn string_literal(text: &str) -> Option<String> {
    let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\'' {
            // A quote inside the literal is only valid when doubled.
            if chars.next() != Some('\'') {
                return None;
            }
        }
        out.push(c);
    }
    Some(out)
}

/// Reads a `$filter` of the form `property eq 'literal'`.
///
/// Returns the property name and the decoded literal, or `None` for anything
/// else (the callers answer 400, as Graph does for a filter it cannot parse).
pub(crate) fn eq_filter(filter: &str) -> Option<(&str, String)> {
    let (property, literal) = filter.trim().split_once(" eq ")?;
    let property = property.trim();
    let is_name = !property.is_empty()
        && property
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '/');
    if !is_name {
        return None;
    }
    Some((property, string_literal(literal.trim())?))
}

/// Appends query parameters to `base`, percent-encoding each value.
pub(crate) fn append_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = base.to_owned();
    let mut separator = match base.find('?') {
        None => "?",
        Some(_) if base.ends_with('?') || base.ends_with('&') => "",
        Some(_) => "&",
    };
    for (name, value) in pairs {
        url.push_str(separator);
        url.push_str(name);
        url.push('=');
        url.extend(utf8_percent_encode(value, QUERY_VALUE));
        separator = "&";
    }
    url
}

/// True for an absolute `http`/`https` URL with a host and no fragment or
/// whitespace, which is what Entra demands of a `redirect_uri`.
pub(crate) fn is_absolute_http_url(text: &str) -> bool {
    let Some(rest) = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    !authority.is_empty()
        && !text.contains('#')
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_checks_are_strict() {
        assert!(is_guid("0000000a-0000-0000-C000-000000000000"));
        assert!(!is_guid("{0000000a-0000-0000-c000-000000000000}"));
        assert!(!is_guid("0000000a00000000c000000000000000"));
        assert!(!is_guid("0000000a-0000-0000-c000-00000000000g"));
    }

    #[test]
    fn stable_guids_are_guids_and_stable() {
        let a = stable_guid(&["user", "t", "a@b"]);
        assert!(is_guid(&a));
        assert_eq!(a, stable_guid(&["user", "t", "a@b"]));
        assert_ne!(a, stable_guid(&["user", "t", "a@c"]));
        assert_ne!(stable_guid(&["ab", "c"]), stable_guid(&["a", "bc"]));
    }

    #[test]
    fn guid_key_accepts_only_the_literal_form() {
        let id = "5F0C0000-0000-4000-8000-000000000001";
        assert_eq!(
            guid_key(&format!("(guid'{id}')")).unwrap(),
            id.to_ascii_lowercase()
        );
        assert!(guid_key(&format!("(guid'{id}')}}")).is_err());
        assert!(guid_key(&format!("%28guid%27{id}%27%29")).is_err());
        assert!(guid_key(&format!("('{id}')")).is_err());
        assert!(guid_key("(guid'nope')").is_err());
    }

    #[test]
    fn literals_and_filters_decode_doubled_quotes() {
        assert_eq!(string_literal("'O''Brien'").as_deref(), Some("O'Brien"));
        assert_eq!(string_literal("'O'Brien'"), None);
        let (property, value) = eq_filter("displayName eq 'Fleet ''ca'''").unwrap();
        assert_eq!((property, value.as_str()), ("displayName", "Fleet 'ca'"));
        assert!(eq_filter("displayName ne 'x'").is_none());
    }

    #[test]
    fn query_values_are_appended_encoded() {
        let url = append_query("http://h/cb?x=1", &[("state", "a b&c"), ("t", "v")]);
        assert_eq!(url, "http://h/cb?x=1&state=a%20b%26c&t=v");
        assert_eq!(
            append_query("http://h/cb", &[("a", "1")]),
            "http://h/cb?a=1"
        );
    }

    #[test]
    fn redirect_targets_must_be_absolute_http() {
        assert!(is_absolute_http_url("https://fleet.example.com/cb"));
        assert!(is_absolute_http_url("http://127.0.0.1:8080/a?b=c"));
        assert!(!is_absolute_http_url("/relative"));
        assert!(!is_absolute_http_url("ftp://host/x"));
        assert!(!is_absolute_http_url("https:///nohost"));
        assert!(!is_absolute_http_url("https://host/x#frag"));
    }
}
