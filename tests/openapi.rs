//! `docs/openapi.yaml` against the router and the input decoder.
//!
//! The document is the API's description for Fleet engineers and client
//! generators; `routes::ROUTES` is what the server answers. These tests fail
//! when either side changes alone: a path or method added, removed or renamed
//! on one side only, an input spelling accepted but not documented (or
//! documented but not accepted). They also check what every reader of the
//! document relies on: a success response on each operation, the shared
//! error schema on every JSON error, and local references that resolve.

use std::collections::BTreeSet;

use compliance_proxy::input::{self, Field};
use compliance_proxy::routes::{self, ROUTES};
use saphyr::{LoadableYamlNode, YamlOwned};

const OPENAPI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");

/// The keys of a Path Item that are operations.
const OPERATIONS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The other keys a Path Item may have, besides `x-` extensions.
const PATH_ITEM_FIELDS: &[&str] = &["$ref", "summary", "description", "servers", "parameters"];

/// Every input `input.rs` decodes for the Fleet-facing operations.
const FIELDS: &[&Field] = &[
    &input::TENANT_ID,
    &input::SECRET,
    &input::MESSAGE_ID,
    &input::DEVICE_ID,
    &input::DEVICE_NAME,
    &input::OS,
    &input::OS_VERSION,
    &input::COMPLIANT,
    &input::LAST_CHECK_IN,
    &input::MANAGED,
    &input::USER_PRINCIPAL_NAME,
    &input::USER_ID,
];

/// One operation of the document: its path, upper-case method and node.
struct Operation<'a> {
    path: String,
    method: String,
    node: &'a YamlOwned,
}

impl Operation<'_> {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Operations that say `security: []` need no API key; the rest are
    /// Fleet's.
    fn is_fleet_facing(&self) -> bool {
        self.node
            .as_mapping_get("security")
            .and_then(YamlOwned::as_sequence)
            .is_none_or(|requirements| !requirements.is_empty())
    }
}

fn document() -> YamlOwned {
    let text =
        std::fs::read_to_string(OPENAPI).unwrap_or_else(|e| panic!("cannot read {OPENAPI}: {e}"));
    // The loader refuses duplicate mapping keys, so a path or method written
    // twice fails here rather than being silently merged.
    let mut docs = YamlOwned::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{OPENAPI} is not valid YAML: {e}"));
    assert_eq!(docs.len(), 1, "{OPENAPI} must hold one YAML document");
    docs.remove(0)
}

/// A scalar as text. YAML reads an unquoted status code such as `200` as an
/// integer, so both spellings count.
fn text(node: &YamlOwned) -> Option<String> {
    node.as_str()
        .map(str::to_string)
        .or_else(|| node.as_integer().map(|n| n.to_string()))
}

/// The entries of a mapping with text keys; nothing for any other node.
fn entries(node: &YamlOwned) -> Vec<(String, &YamlOwned)> {
    node.as_mapping()
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| Some((text(k)?, v)))
                .collect()
        })
        .unwrap_or_default()
}

fn get<'a>(node: &'a YamlOwned, keys: &[&str]) -> Option<&'a YamlOwned> {
    keys.iter()
        .try_fold(node, |node, key| node.as_mapping_get(key))
}

/// Looks up a local reference such as `#/components/schemas/Error`.
fn lookup<'a>(doc: &'a YamlOwned, reference: &str) -> Option<&'a YamlOwned> {
    let pointer = reference.strip_prefix("#/")?;
    pointer.split('/').try_fold(doc, |node, token| {
        node.as_mapping_get(&token.replace("~1", "/").replace("~0", "~"))
    })
}

/// Follows `$ref` until a node without one.
fn resolve<'a>(doc: &'a YamlOwned, mut node: &'a YamlOwned) -> &'a YamlOwned {
    for _ in 0..16 {
        let Some(reference) = node.as_mapping_get("$ref").and_then(YamlOwned::as_str) else {
            return node;
        };
        node = lookup(doc, reference).unwrap_or_else(|| panic!("unresolved $ref {reference}"));
    }
    panic!("a $ref chain in {OPENAPI} is longer than 16 links");
}

/// Every operation under `paths`. Panics on a Path Item key that is neither
/// an operation nor a known field, so a misspelt method cannot hide.
fn operations(doc: &YamlOwned) -> Vec<Operation<'_>> {
    let paths = doc.as_mapping_get("paths").expect("the document has paths");
    let mut found = Vec::new();
    for (path, item) in entries(paths) {
        for (key, node) in entries(item) {
            if OPERATIONS.contains(&key.as_str()) {
                found.push(Operation {
                    path: path.clone(),
                    method: key.to_ascii_uppercase(),
                    node,
                });
            } else {
                assert!(
                    PATH_ITEM_FIELDS.contains(&key.as_str()) || key.starts_with("x-"),
                    "{path}: {key:?} is neither an HTTP method nor a Path Item field"
                );
            }
        }
    }
    found
}

fn listing(pairs: &BTreeSet<(String, String)>) -> String {
    if pairs.is_empty() {
        return "  (none)".to_string();
    }
    pairs
        .iter()
        .map(|(path, method)| format!("  {method} {path}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_document_and_the_router_list_the_same_routes_and_methods() {
    let doc = document();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|op| (op.path, op.method))
        .collect();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .flat_map(|route| {
            route
                .methods
                .iter()
                .map(|method| (route.path.to_string(), method.as_str().to_string()))
        })
        .collect();

    let only_documented: BTreeSet<_> = documented.difference(&routed).cloned().collect();
    let only_routed: BTreeSet<_> = routed.difference(&documented).cloned().collect();
    assert!(
        only_documented.is_empty() && only_routed.is_empty(),
        "docs/openapi.yaml and routes::ROUTES disagree.\n\
         In the document but not the router:\n{}\n\
         In the router but not the document:\n{}",
        listing(&only_documented),
        listing(&only_routed),
    );
}

#[test]
fn the_document_is_openapi_3_1() {
    let doc = document();
    let version = doc
        .as_mapping_get("openapi")
        .and_then(YamlOwned::as_str)
        .expect("an openapi version string");
    assert!(version.starts_with("3.1."), "openapi: {version}");
}

#[test]
fn every_operation_documents_its_success_response() {
    let doc = document();
    let mut missing = Vec::new();
    for op in operations(&doc) {
        // The consent callback answers a browser with a redirect, never 200.
        let success = if op.path == routes::CONSENT {
            "302"
        } else {
            "200"
        };
        let documented = op
            .node
            .as_mapping_get("responses")
            .map(entries)
            .unwrap_or_default()
            .iter()
            .any(|(status, _)| status == success);
        if !documented {
            missing.push(format!("{}: no {success} response", op.name()));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn every_json_error_uses_the_error_schema() {
    let doc = document();
    let error = get(&doc, &["components", "schemas", "Error"]).expect("components.schemas.Error");
    assert_eq!(
        get(error, &["type"]).and_then(text).as_deref(),
        Some("object")
    );
    let required: Vec<String> = get(error, &["required"])
        .and_then(YamlOwned::as_sequence)
        .map(|keys| keys.iter().filter_map(text).collect())
        .unwrap_or_default();
    assert_eq!(required, ["error"], "Error.required");
    assert_eq!(
        get(error, &["properties", "error", "type"]).and_then(text),
        Some("string".to_string()),
        "Error.properties.error.type"
    );

    let mut wrong = Vec::new();
    let mut checked = 0;
    for op in operations(&doc) {
        let responses = op.node.as_mapping_get("responses").map(entries);
        for (status, response) in responses.unwrap_or_default() {
            if status.parse::<u16>().is_ok_and(|s| s < 400) {
                continue;
            }
            let response = resolve(&doc, response);
            let Some(schema) = get(response, &["content", "application/json", "schema"]) else {
                continue;
            };
            checked += 1;
            let reference = schema.as_mapping_get("$ref").and_then(YamlOwned::as_str);
            if reference != Some("#/components/schemas/Error") {
                wrong.push(format!("{} {status}: {reference:?}", op.name()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "JSON errors not using Error:\n{}",
        wrong.join("\n")
    );
    assert!(checked > 0, "no JSON error response was found to check");
}

#[test]
fn every_input_spelling_is_documented_and_nothing_else() {
    let doc = document();
    let mut documented = BTreeSet::new();
    let mut unknown = Vec::new();
    for op in operations(&doc).iter().filter(|op| op.is_fleet_facing()) {
        let mut names = Vec::new();
        for parameter in op
            .node
            .as_mapping_get("parameters")
            .and_then(YamlOwned::as_sequence)
            .into_iter()
            .flatten()
        {
            let parameter = resolve(&doc, parameter);
            if get(parameter, &["in"]).and_then(text).as_deref() == Some("query") {
                names.extend(get(parameter, &["name"]).and_then(text));
            }
        }
        if let Some(body) = op.node.as_mapping_get("requestBody") {
            let body = resolve(&doc, body);
            for (_, media) in entries(get(body, &["content"]).expect("requestBody.content")) {
                let schema = resolve(&doc, get(media, &["schema"]).expect("a body schema"));
                let properties = get(schema, &["properties"]).map(entries);
                names.extend(properties.unwrap_or_default().into_iter().map(|(n, _)| n));
            }
        }

        for name in names {
            if !FIELDS.iter().any(|f| f.aliases.contains(&name.as_str())) {
                unknown.push(format!("{}: {name}", op.name()));
            }
            documented.insert(name);
        }
    }

    let undocumented: Vec<&str> = FIELDS
        .iter()
        .flat_map(|field| field.aliases.iter().copied())
        .filter(|alias| !documented.contains(*alias))
        .collect();
    assert!(
        undocumented.is_empty(),
        "accepted by input.rs but not documented: {undocumented:?}"
    );
    assert!(
        unknown.is_empty(),
        "documented but not accepted by input.rs:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn every_reference_resolves() {
    fn walk(doc: &YamlOwned, node: &YamlOwned, broken: &mut Vec<String>) {
        if let Some(reference) = node.as_mapping_get("$ref").and_then(YamlOwned::as_str)
            && lookup(doc, reference).is_none()
        {
            broken.push(reference.to_string());
        }
        for (_, child) in entries(node) {
            walk(doc, child, broken);
        }
        for child in node.as_sequence().into_iter().flatten() {
            walk(doc, child, broken);
        }
    }

    let doc = document();
    let mut broken = Vec::new();
    walk(&doc, &doc, &mut broken);
    assert!(broken.is_empty(), "unresolved references: {broken:?}");
}
