//! Property tests of the input layer: decoding and validation never panic,
//! and accept exactly what they should.

use compliance_proxy::ids::{Guid, Origin};
use compliance_proxy::input::{self, Fields};
use proptest::prelude::*;

/// Strings a hostile client might send: any characters, biased towards the
/// ones that matter to URLs, JSON and HTTP.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[-a-zA-Z0-9:/@?#%&=+.\\[\\]{}\"'\\\\ \r\n\t]{0,80}",
    ]
}

fn hex(n: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(prop::sample::select(b"0123456789abcdefABCDEF".to_vec()), n)
        .prop_map(|bytes| String::from_utf8(bytes).unwrap())
}

fn guid_text() -> impl Strategy<Value = String> {
    (hex(8), hex(4), hex(4), hex(4), hex(12))
        .prop_map(|(a, b, c, d, e)| format!("{a}-{b}-{c}-{d}-{e}"))
}

/// A DNS label; it starts with a letter, since a name of only digits and
/// dots is an IPv4 address (tested separately).
fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?"
}

/// A valid origin, and its normalised form.
fn origin() -> impl Strategy<Value = (String, String)> {
    (
        prop::sample::select(vec!["http", "https", "HTTPS", "Http"]),
        proptest::collection::vec(label(), 1..4),
        proptest::option::of(1u16..=65535),
        any::<bool>(),
    )
        .prop_map(|(scheme, labels, port, slash)| {
            let host = labels.join(".");
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let slash = if slash { "/" } else { "" };
            let input = format!("{scheme}://{host}{port}{slash}");
            let normal = format!("{}://{}{port}", scheme.to_lowercase(), host.to_lowercase());
            (input, normal)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn guid_parse_never_panics_and_accepts_only_the_canonical_shape(text in hostile_text()) {
        let shaped = text.len() == 36
            && text.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            });
        prop_assert_eq!(Guid::parse(&text).is_some(), shaped);
    }

    #[test]
    fn guids_round_trip_lower_cased(text in guid_text()) {
        let guid = Guid::parse(&text).expect("a canonical GUID parses");
        prop_assert_eq!(guid.to_string(), text.to_lowercase());
    }

    #[test]
    fn origin_parse_never_panics(text in hostile_text()) {
        if let Ok(origin) = Origin::parse(&text) {
            // Whatever is accepted is a bare origin, safe to redirect to.
            let s = origin.as_str();
            prop_assert!(s.starts_with("http://") || s.starts_with("https://"));
            let rest = s.split_once("://").unwrap().1;
            prop_assert!(!rest.contains(['/', '?', '#', '@', '\\', ' ', '\r', '\n']), "{}", s);
        }
    }

    #[test]
    fn valid_origins_are_accepted_and_normalised((input, normal) in origin()) {
        prop_assert_eq!(Origin::parse(&input).map(|o| o.as_str().to_string()), Ok(normal));
    }

    #[test]
    fn origins_with_more_than_scheme_host_and_port_are_refused(
        (input, _) in origin(),
        extra in prop::sample::select(vec!["/x", "?a=1", "#f", "/#", "//evil", "/x/"]),
        userinfo in any::<bool>(),
    ) {
        let base = input.trim_end_matches('/');
        let longer = format!("{base}{extra}");
        prop_assert!(Origin::parse(&longer).is_err(), "{}", longer);
        if userinfo {
            let (scheme, rest) = base.split_once("://").unwrap();
            let with_user = format!("{scheme}://user@{rest}");
            prop_assert!(Origin::parse(&with_user).is_err(), "{}", with_user);
        }
    }

    #[test]
    fn numeric_hosts_are_accepted_only_as_ipv4_addresses(
        parts in proptest::collection::vec(0u32..1000, 1..6),
    ) {
        let host = parts.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
        let valid = host.parse::<std::net::Ipv4Addr>().is_ok();
        prop_assert_eq!(Origin::parse(&format!("http://{host}")).is_ok(), valid, "{}", host);
    }

    /// Browsers read a host whose last label is a number or starts with 0x
    /// as an IPv4 address in shorthand, octal or hex (`0x7f.1`); such hosts
    /// are refused unless they are a plain dotted quad.
    #[test]
    fn hosts_ending_in_a_number_must_be_dotted_quads(
        labels in proptest::collection::vec(label(), 0..3),
        last in prop_oneof!["[0-9]{1,10}", "0[xX][0-9a-fA-F]{0,8}"],
    ) {
        let mut host = labels.join(".");
        if !host.is_empty() {
            host.push('.');
        }
        host.push_str(&last);
        prop_assert!(Origin::parse(&format!("https://{host}")).is_err(), "{}", host);
    }

    #[test]
    fn ipv4_octets_with_leading_zeros_are_refused(
        octets in proptest::collection::vec(0u8..=255, 4),
        padded in proptest::option::of(0usize..4),
    ) {
        let host = octets
            .iter()
            .enumerate()
            .map(|(i, o)| if padded == Some(i) { format!("0{o}") } else { o.to_string() })
            .collect::<Vec<_>>()
            .join(".");
        let accepted = Origin::parse(&format!("http://{host}")).is_ok();
        prop_assert_eq!(accepted, padded.is_none(), "{}", host);
    }

    #[test]
    fn query_decoding_round_trips_any_value(value in any::<String>(), snake in any::<bool>()) {
        let key = if snake { "fleet_server_secret" } else { "fleetServerSecret" };
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair(key, &value)
            .finish();
        let fields = Fields::from_query(Some(&query));
        let decoded = fields.string(&input::SECRET).unwrap();
        prop_assert_eq!(decoded, Some(value));
    }

    #[test]
    fn json_body_values_come_back_exactly(value in any::<String>()) {
        let body = serde_json::json!({ "deviceName": value }).to_string();
        let mut fields = Fields::default();
        fields.add_body(Some("application/json"), body.as_bytes()).unwrap();
        prop_assert_eq!(fields.string(&input::DEVICE_NAME).unwrap(), Some(value));
    }

    #[test]
    fn body_decoding_never_panics(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        content_type in proptest::option::of(prop::sample::select(vec![
            "application/json", "application/x-www-form-urlencoded", "text/plain",
            "application/json; charset=utf-8", "",
        ])),
    ) {
        let mut fields = Fields::default();
        if fields.add_body(content_type, &body).is_ok() {
            // Any lookup on what was accepted answers without panicking.
            let _ = fields.guid(&input::TENANT_ID);
            let _ = fields.bool(&input::COMPLIANT);
            let _ = fields.integer(&input::LAST_CHECK_IN);
            let _ = fields.string(&input::USER_PRINCIPAL_NAME);
        }
    }

    #[test]
    fn query_decoding_never_panics(query in hostile_text()) {
        let fields = Fields::from_query(Some(&query));
        let _ = fields.guid(&input::TENANT_ID);
        let _ = fields.required_string(&input::SECRET);
        let _ = fields.bool(&input::MANAGED);
        let _ = fields.integer(&input::LAST_CHECK_IN);
    }

    #[test]
    fn nested_json_is_refused_cleanly(depth in 17usize..5000) {
        let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let mut fields = Fields::default();
        let err = fields.add_body(Some("application/json"), body.as_bytes()).unwrap_err();
        prop_assert_eq!(err.to_string(), "the JSON body is nested more than 16 levels deep");
    }
}
