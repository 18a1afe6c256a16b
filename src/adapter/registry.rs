//! The adapter registry: every channel the gateway can speak, in one place.
//!
//! A channel is a file `adapters/<name>.toml` (strictly parsed: unknown keys are errors). Code is
//! only needed where the declarative engine cannot express a channel; such code is listed in
//! [`CODE_BACKED`], the one list of Rust-implemented channel behaviour.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Adapter;
use super::spec::{AdapterSpec, Format, RouteTarget, SignatureSpec};

/// Channel behaviour implemented in Rust rather than in an adapter file, by name. Each entry is
/// selected from an adapter file by the key named here.
pub const CODE_BACKED: &[(&str, &str)] = &[
    (
        "format = \"canonical\"",
        "crossgate's own order JSON (mobile app, call-centre API), read with serde into the canonical Order",
    ),
    (
        "signature.scheme = \"hmac_sha256\"",
        "HMAC-SHA256 of the body in a header (Shopify, WooCommerce)",
    ),
    (
        "signature.scheme = \"standard_webhooks\"",
        "Standard Webhooks v1 signatures with timestamp tolerance and key rotation",
    ),
    (
        "signature.scheme = \"stripe\"",
        "Stripe-Signature t=,v1= with timestamp tolerance",
    ),
    (
        "signature.scheme = \"tiktok_shop\"",
        "TikTok Shop: hex HMAC-SHA256 of app key + body in Authorization",
    ),
    (
        "signature.scheme = \"shared_secret_header\"",
        "a secret header compared in constant time (BigCommerce does not sign)",
    ),
    (
        "signature.scheme = \"wechat_pay_v2\"",
        "WeChat Pay v2: MD5 / HMAC-SHA256 sign element inside the XML body",
    ),
    (
        "signature.scheme = \"wechat_message\"",
        "WeChat message push in safe mode (微信小店): SHA-1 msg_signature in the URL, AES-256-CBC body under the EncodingAESKey",
    ),
    (
        "webhook.subscription_check",
        "the GET a sender checks a webhook URL with: Meta's hub.challenge, WeChat's echostr",
    ),
    (
        "api.auth.kind = \"tiktok_shop\"",
        "TikTok Shop Open API request signing (app_key, timestamp, sign)",
    ),
];

/// A problem with one adapter file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

/// All loaded adapters, by name.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    adapters: BTreeMap<String, Arc<Adapter>>,
}

impl Registry {
    /// Loads every `*.toml` file of a directory. All problems of all files are reported.
    pub fn load_dir(dir: &Path) -> Result<Self, Vec<LoadError>> {
        let (registry, errors) = Self::load_dir_lenient(dir)?;
        if errors.is_empty() {
            Ok(registry)
        } else {
            Err(errors)
        }
    }

    /// Loads every `*.toml` file of a directory that is valid, with the problems of the others
    /// (the caller decides which matter: the gateway config refuses a broken adapter an
    /// instance uses, and warns of the rest). `Err` only when the directory cannot be read.
    pub fn load_dir_lenient(dir: &Path) -> Result<(Self, Vec<LoadError>), Vec<LoadError>> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            vec![LoadError {
                file: dir.to_path_buf(),
                message: format!("cannot read the adapter directory: {e}"),
            }]
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        let mut registry = Registry::default();
        let mut errors = Vec::new();
        for file in files {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(LoadError {
                        file,
                        message: format!("cannot read: {e}"),
                    });
                    continue;
                }
            };
            let stem = file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            match parse_adapter(&text, &stem) {
                Ok(spec) => {
                    registry.adapters.insert(
                        spec.name.clone(),
                        Arc::new(Adapter::new(spec).with_source(&text)),
                    );
                }
                Err(messages) => errors.extend(messages.into_iter().map(|message| LoadError {
                    file: file.clone(),
                    message,
                })),
            }
        }
        Ok((registry, errors))
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Adapter>> {
        self.adapters.get(name)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Adapter>> {
        self.adapters.values()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.adapters.keys().map(String::as_str)
    }

    pub fn insert(&mut self, adapter: Adapter) {
        self.adapters
            .insert(adapter.name().to_string(), Arc::new(adapter));
    }
}

/// Parses and checks one adapter file. `expected_name` is the file stem.
pub fn parse_adapter(text: &str, expected_name: &str) -> Result<AdapterSpec, Vec<String>> {
    let spec: AdapterSpec = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
    let mut problems = check(&spec, expected_name);
    let tree: toml::Table = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
    problems.extend(undeclared_settings(&spec, &tree));
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(problems)
    }
}

/// Every setting the file reads (`{setting:x}` in paths and queries, `zone = "setting:x"`,
/// `{ setting = "x" }` lookups, `base_url_setting`) must be declared under `[settings]`, so
/// that `check-config` can check instances against the declarations.
fn undeclared_settings(spec: &AdapterSpec, tree: &toml::Table) -> Vec<String> {
    let mut used = std::collections::BTreeSet::new();
    collect_settings(&toml::Value::Table(tree.clone()), &mut used);
    used.into_iter()
        .filter(|name| !spec.settings.contains_key(name))
        .map(|name| {
            format!(
                "settings.{name}: the adapter reads the instance setting '{name}'; declare it (`[settings.{name}] kind = ...`)"
            )
        })
        .collect()
}

fn collect_settings(v: &toml::Value, used: &mut std::collections::BTreeSet<String>) {
    match v {
        toml::Value::String(s) => {
            for part in s.split("setting:").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    used.insert(name);
                }
            }
        }
        toml::Value::Array(items) => items.iter().for_each(|i| collect_settings(i, used)),
        toml::Value::Table(t) => {
            for (k, v) in t {
                if k == "settings" {
                    continue; // the declarations themselves
                }
                if let ("setting" | "base_url_setting", toml::Value::String(name)) = (k.as_str(), v)
                {
                    used.insert(name.clone());
                }
                collect_settings(v, used);
            }
        }
        _ => {}
    }
}

/// With `each`, orders are read one by one out of a page, and a part anchored at the document
/// (`$…`) reads the page, not the order: a nested address under `root = "$.x"` was silently
/// dropped where `^.x` (the order's own) was meant. Refused with the fix named.
fn document_anchored_parts(o: &super::spec::OrderMapping) -> Vec<String> {
    use super::spec::ExprKind;
    if o.each.is_none() {
        return Vec::new();
    }
    let mut parts: Vec<(&str, &str)> = Vec::new();
    for (name, m) in [
        ("order.billing_address.root", o.billing_address.as_ref()),
        ("order.shipping_address.root", o.shipping_address.as_ref()),
    ] {
        if let Some(ExprKind::Path(path)) = m.map(|m| &m.root.kind) {
            parts.push((name, path.as_str()));
        }
    }
    parts.push(("order.lines.each", o.lines.each.0.as_str()));
    parts
        .into_iter()
        .filter(|(_, path)| path.starts_with('$'))
        .map(|(name, path)| {
            format!(
                "{name}: '{path}' starts at the document (the whole page), but orders are read one by one with `each`; use '^{}' for the order's own",
                path.trim_start_matches('$')
            )
        })
        .collect()
}

/// Checks what the types cannot: names, mappings present for routed records, signature fields.
fn check(spec: &AdapterSpec, expected_name: &str) -> Vec<String> {
    let mut p = Vec::new();
    if spec.name != expected_name {
        p.push(format!(
            "name: '{}' must equal the file name '{expected_name}'",
            spec.name
        ));
    }
    let valid_name = !spec.name.is_empty()
        && spec
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid_name {
        p.push("name: use lower-case letters, digits, '-' and '_'".into());
    }
    match spec.format {
        Format::Canonical => {
            if spec.order.is_some() || spec.listing.is_some() {
                p.push("format: canonical payloads need no [order] or [listing] mapping".into());
            }
        }
        Format::Json | Format::Xml | Format::Csv => {
            if spec.order.is_none() && spec.listing.is_none() && spec.facts.is_empty() {
                p.push("an adapter needs an [order], [listing] or [facts.*] mapping".into());
            }
        }
    }
    if let Some(o) = &spec.order
        && o.lines.unit_price.is_some() == o.lines.line_total.is_some()
    {
        p.push("order.lines: give exactly one of unit_price and line_total".into());
    }
    if let Some(o) = &spec.order {
        p.extend(document_anchored_parts(o));
    }
    for (name, f) in &spec.facts {
        let kinds = [
            f.payment.is_some(),
            f.shipment.is_some(),
            f.cancellation.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            p.push(format!(
                "facts.{name}: give exactly one of payment, shipment and cancellation"
            ));
        }
        if let Some(pay) = &f.payment
            && pay.amount.currency.is_none()
        {
            p.push(format!(
                "facts.{name}.payment.amount: a fact needs the currency (`currency = ...`)"
            ));
        }
    }
    if (spec.fetch.is_some() || spec.poll.is_some() || spec.outbound.is_some())
        && spec.api.is_none()
    {
        p.push("fetch, poll and outbound need an [api] section".into());
    }
    if let Some(o) = &spec.outbound {
        p.extend(o.problems(&spec.settings));
    }
    if let Some(poll) = &spec.poll {
        for (i, d) in poll.details.iter().enumerate() {
            if d.attach_as.is_some() == d.replace_with.is_some() {
                p.push(format!(
                    "poll.details[{i}]: give exactly one of attach_as and replace_with"
                ));
            }
        }
    }
    if spec.csv.is_some() && spec.format != Format::Csv {
        p.push("csv: only applies to format = \"csv\"".into());
    }
    if let Some(d) = spec.csv.as_ref().and_then(|c| c.delimiter.as_ref())
        && (d.len() != 1 || !d.is_ascii())
    {
        p.push("csv.delimiter: must be one ASCII character".into());
    }
    if let Some(w) = &spec.webhook {
        for (i, r) in w.routes.iter().enumerate() {
            if r.topics.is_empty() {
                p.push(format!(
                    "webhook.routes[{i}].topics: list at least one topic"
                ));
            }
            let needs = match r.record {
                RouteTarget::Order => spec.order.is_none() && spec.format != Format::Canonical,
                RouteTarget::Listing => spec.listing.is_none(),
                RouteTarget::Stock => spec.stock.is_none(),
                RouteTarget::Fact => !r.facts.as_ref().is_some_and(|n| spec.facts.contains_key(n)),
                RouteTarget::Ignore => false,
            };
            if r.facts.is_some() && r.record != RouteTarget::Fact {
                p.push(format!(
                    "webhook.routes[{i}].facts: only applies to record = \"fact\""
                ));
            }
            if needs {
                p.push(format!(
                    "webhook.routes[{i}].record: no mapping for this record kind"
                ));
            }
        }
        if !w.routes.is_empty() && w.topic.is_none() {
            p.push("webhook.topic: routes need a topic source".into());
        }
        if let SignatureSpec::HmacSha256 { header, .. } = &w.signature
            && header.trim().is_empty()
        {
            p.push("webhook.signature.header: must not be empty".into());
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_paths_are_reported_with_location() {
        let text = r#"
name = "x"
channel_kind = "web_shop"
format = "json"
colour = "blue"
"#;
        let e = parse_adapter(text, "x").unwrap_err();
        assert!(e[0].contains("unknown field `colour`"), "{e:?}");
        assert!(e[0].contains("line 5"), "{e:?}");

        let text = r#"
name = "y"
channel_kind = "web_shop"
format = "json"
[listing]
external_id = "id"
updated_at = "a..b"
title = "t"
status = "s"
"#;
        let e = parse_adapter(text, "y").unwrap_err();
        assert!(e[0].contains("empty segment"), "{e:?}");
        assert!(e[0].contains("line 7"), "{e:?}");
    }

    #[test]
    fn name_must_match_file() {
        let text = "name = \"a\"\nchannel_kind = \"phone\"\nformat = \"canonical\"\n";
        let e = parse_adapter(text, "b").unwrap_err();
        assert!(e[0].contains("must equal the file name"));
        assert!(parse_adapter(text, "a").is_ok());
    }

    #[test]
    fn every_setting_read_must_be_declared() {
        let text = r#"
name = "s"
channel_kind = "web_shop"
format = "json"
[listing]
external_id = "id"
updated_at = { path = "t", date = { pattern = "%Y", zone = "setting:timezone" } }
title = "t"
status = { setting = "default_status" }
"#;
        let e = parse_adapter(text, "s").unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("settings.default_status: the adapter reads"),
            "{e:?}"
        );
        assert!(e[1].starts_with("settings.timezone:"), "{e:?}");
        let declared = text.replace(
            "[listing]",
            "[settings.timezone]\nkind = \"time_zone\"\n[settings.default_status]\nkind = \"text\"\n[listing]",
        );
        assert!(parse_adapter(&declared, "s").is_ok());
    }

    #[test]
    fn a_page_anchored_part_of_a_listed_order_is_refused() {
        let text = r#"
name = "p"
channel_kind = "web_shop"
format = "json"
[order]
root = "orders"
each = "[*]"
external_id = "id"
updated_at = "u"
placed_at = "p"
status = "s"
currency = "c"
[order.shipping_address]
root = "$.address"
country = "country"
[order.lines]
each = "items"
title = "t"
quantity = "q"
unit_price = "p"
[order.totals]
grand_total = "g"
"#;
        let e = parse_adapter(text, "p").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("order.shipping_address.root: '$.address' starts at the document"),
            "{e:?}"
        );
        assert!(e[0].contains("use '^.address'"), "{e:?}");
        assert!(parse_adapter(&text.replace("$.address", "^.address"), "p").is_ok());
        // A single-order document (no `each`): `$` is the order's document, which is fine.
        let single = text.replace("root = \"orders\"\neach = \"[*]\"\n", "");
        assert!(
            parse_adapter(&single, "p").is_ok(),
            "{:?}",
            parse_adapter(&single, "p").err()
        );
    }

    #[test]
    fn repository_adapters_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters");
        let reg = Registry::load_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        assert!(reg.get("shopify").is_some());
        assert!(reg.get("app").is_some());
    }
}
