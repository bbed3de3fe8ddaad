//! Putting caller-provided values into Microsoft URLs safely.
//!
//! Only GUIDs (already validated) go into URLs unencoded. Everything else is
//! percent-encoded here, after OData string-literal quoting, so no input can
//! change the structure of a path or query.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters is encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// In a path segment we also leave `@` and `'` readable: Graph documents UPN
/// keys as `users('name@domain')` with quotes doubled inside the literal.
const KEY_SEGMENT: &AsciiSet = &UNRESERVED.remove(b'@').remove(b'\'');

/// `'value'` as an OData string literal: single quotes doubled.
fn odata_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The `$filter` value `{property} eq '{value}'`, encoded for a query string.
pub(crate) fn odata_filter(property: &str, value: &str) -> String {
    let filter = format!("{property} eq {}", odata_literal(value));
    utf8_percent_encode(&filter, UNRESERVED).to_string()
}

/// The Graph path segment addressing a user by principal name.
pub(crate) fn user_segment(upn: &str) -> String {
    let literal = odata_literal(upn);
    format!("users({})", utf8_percent_encode(&literal, KEY_SEGMENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_quoted_then_encoded() {
        assert_eq!(
            odata_filter("displayName", "Fleet conditional access"),
            "displayName%20eq%20%27Fleet%20conditional%20access%27"
        );
        assert_eq!(
            odata_filter("displayName", "O'Neil & co"),
            "displayName%20eq%20%27O%27%27Neil%20%26%20co%27"
        );
    }

    #[test]
    fn user_segments_double_quotes_and_encode_the_rest() {
        assert_eq!(
            user_segment("alex.doe@example.com"),
            "users('alex.doe@example.com')"
        );
        assert_eq!(
            user_segment("o'brien@example.com"),
            "users('o''brien@example.com')"
        );
        assert_eq!(
            user_segment("a/b?c#d%e f@x.com"),
            "users('a%2Fb%3Fc%23d%25e%20f@x.com')"
        );
        assert_eq!(user_segment("ü@x.com"), "users('%C3%BC@x.com')");
        assert_eq!(user_segment("')/../x"), "users('''%29%2F..%2Fx')");
    }
}
