//! The adapter registry and the `[[instance]]` list: ids, secrets, and what each instance's
//! adapter needs from it (webhook secrets, an API base URL and credential).

use super::raw::RawConfig;
use super::validate::Check;
use super::*;

/// Loads `adapters_dir`. A broken file is an issue when an instance uses its adapter (or when
/// the file's name cannot say which adapter it is), and otherwise a warning: the gateway starts
/// without it, and one bad file no instance needs does not stop it.
pub(super) fn registry(c: &mut Check, raw: &RawConfig, base: &Path) -> Registry {
    let adapters_dir = resolve_path(base, &raw.adapters_dir);
    let (registry, errors) = match Registry::load_dir_lenient(&adapters_dir) {
        Ok(loaded) => loaded,
        Err(errors) => (Registry::default(), errors),
    };
    for e in errors {
        let stem = e
            .file
            .file_stem()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = e
            .file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let used = raw.instances.iter().any(|i| i.adapter == stem);
        if used || e.file == adapters_dir {
            c.issue(&format!("adapters_dir/{file}"), e.message);
        } else {
            c.warnings.push(format!(
                "adapters_dir/{file}: {} (no instance uses it; not loaded)",
                e.message
            ));
        }
    }
    registry
}

/// `[[instance]]`.
pub(super) fn instances(
    c: &mut Check,
    raw: &RawConfig,
    registry: &Registry,
    customer_key_salt: &Option<Secret>,
) -> BTreeMap<String, Arc<Instance>> {
    let mut instances = BTreeMap::new();
    let mut seen = HashSet::new();
    for (i, inst) in raw.instances.iter().enumerate() {
        let at = |f: &str| format!("instance[{i}].{f}");
        if validate_instance_id(&inst.id).is_err() {
            c.issue(
                &at("id"),
                "use 1-63 lower-case letters, digits and '-', starting with a letter".into(),
            );
        } else if !seen.insert(inst.id.clone()) {
            c.issue(
                &at("id"),
                format!("'{}' is used by another instance", inst.id),
            );
        }
        if inst.account.trim().is_empty() {
            c.issue(&at("account"), "must not be empty".into());
        }
        let mut secrets = BTreeMap::new();
        for (name, values) in &inst.secrets {
            let items = values.items();
            if items.is_empty() {
                c.issue(
                    &at(&format!("secrets.{name}")),
                    "list at least one secret".into(),
                );
            }
            let resolved: Vec<Secret> = items
                .iter()
                .enumerate()
                .filter_map(|(j, text)| {
                    let p = if items.len() > 1 {
                        at(&format!("secrets.{name}[{j}]"))
                    } else {
                        at(&format!("secrets.{name}"))
                    };
                    c.secret(&p, text)
                })
                .collect();
            secrets.insert(name.clone(), resolved);
        }
        let Some(adapter) = registry.get(&inst.adapter).cloned() else {
            if !registry.names().any(|_| true) {
                continue; // the adapter directory itself failed; already reported
            }
            let known: Vec<&str> = registry.names().collect();
            c.issue(
                &at("adapter"),
                format!(
                    "unknown adapter '{}' (known: {})",
                    inst.adapter,
                    known.join(", ")
                ),
            );
            continue;
        };
        webhook_secrets(c, &at, inst, &adapter, &secrets);
        // Instances that call the channel's API: polling, or thin webhooks that are fetched.
        let spec = adapter.spec();
        if inst.poll && spec.poll.is_none() {
            c.issue(
                &at("poll"),
                format!("adapter '{}' has no [poll] section", inst.adapter),
            );
        }
        if let Some(api) = &spec.api
            && (inst.poll || spec.fetch.is_some())
        {
            match inst.settings.get(&api.base_url_setting) {
                None => c.issue(
                    &at(&format!("settings.{}", api.base_url_setting)),
                    format!(
                        "adapter '{}' calls the channel API: give its base URL here",
                        inst.adapter
                    ),
                ),
                Some(u) => {
                    if let Err(p) = crate::outbound::check_base_url(u) {
                        c.issue(&at(&format!("settings.{}", api.base_url_setting)), p);
                    }
                }
            }
            for name in api.auth.iter().flat_map(|a| a.secret_names()) {
                if !inst.secrets.contains_key(name) {
                    c.issue(
                        &at(&format!("secrets.{name}")),
                        format!(
                            "adapter '{}' calls the channel API: give its credential as \"${{ENV_VAR}}\"",
                            inst.adapter
                        ),
                    );
                }
            }
        }
        instance_settings(c, &at, inst, spec);
        instances.insert(
            inst.id.clone(),
            Arc::new(Instance {
                id: inst.id.clone(),
                adapter,
                account: inst.account.clone(),
                secrets,
                settings: inst.settings.clone(),
                poll: inst.poll,
                customer_key_salt: customer_key_salt.clone(),
            }),
        );
    }
    instances
}

/// An instance's `settings` against what its adapter declares: no unknown names (a typo is
/// otherwise silently ignored), every required one, and each value of its kind. References to
/// other instances are checked once every instance is known ([`instance_references`]).
fn instance_settings(
    c: &mut Check,
    at: &dyn Fn(&str) -> String,
    inst: &super::raw::RawInstance,
    spec: &crate::adapter::spec::AdapterSpec,
) {
    use crate::adapter::spec::{SettingKind, SettingRequired};
    let declared = &spec.settings;
    for (name, value) in &inst.settings {
        let Some(d) = declared.get(name) else {
            let known: Vec<&str> = declared.keys().map(String::as_str).collect();
            c.issue(
                &at(&format!("settings.{name}")),
                format!(
                    "adapter '{}' reads no setting '{name}' ({})",
                    inst.adapter,
                    if known.is_empty() {
                        "it reads none".to_string()
                    } else {
                        format!("it reads: {}", known.join(", "))
                    }
                ),
            );
            continue;
        };
        let problem = match d.kind {
            SettingKind::Text | SettingKind::Instance => None,
            SettingKind::Url => crate::outbound::check_base_url(value).err(),
            SettingKind::TimeZone => value.parse::<chrono_tz::Tz>().is_err().then(|| {
                "is not an IANA time zone (e.g. \"Europe/Berlin\", \"Asia/Shanghai\")".to_string()
            }),
            SettingKind::Currency => crate::model::CurrencyCode::parse(value)
                .err()
                .map(|_| "is not an ISO 4217 currency code".to_string()),
        };
        if let Some(p) = problem {
            c.issue(&at(&format!("settings.{name}")), p);
        }
    }
    for (name, d) in declared {
        let needed = match d.required {
            Some(SettingRequired::Always) => true,
            Some(SettingRequired::WhenPolled) => inst.poll,
            None => false,
        };
        if needed && !inst.settings.contains_key(name) {
            c.issue(
                &at(&format!("settings.{name}")),
                format!(
                    "adapter '{}' needs this setting{}: {}",
                    inst.adapter,
                    if d.required == Some(SettingRequired::WhenPolled) {
                        " to poll"
                    } else {
                        ""
                    },
                    d.description
                ),
            );
        }
    }
}

/// Settings of kind `instance` must name another configured instance.
pub(super) fn instance_references(
    c: &mut Check,
    raw: &RawConfig,
    instances: &BTreeMap<String, Arc<Instance>>,
) {
    use crate::adapter::spec::SettingKind;
    for (i, inst) in raw.instances.iter().enumerate() {
        let Some(known) = instances.get(&inst.id) else {
            continue;
        };
        for (name, d) in &known.adapter.spec().settings {
            let Some(value) = inst.settings.get(name) else {
                continue;
            };
            if d.kind == SettingKind::Instance
                && (value == &inst.id || !instances.contains_key(value))
            {
                let ids: Vec<&str> = instances
                    .keys()
                    .filter(|k| **k != inst.id)
                    .map(String::as_str)
                    .collect();
                c.issue(
                    &format!("instance[{i}].settings.{name}"),
                    format!(
                        "names no other instance ('{value}'; instances: {})",
                        ids.join(", ")
                    ),
                );
            }
        }
    }
}

/// The secrets an adapter's webhook signature needs. A polled instance may leave them out: it
/// then takes no webhooks (every push to it is refused as not authentic), only what polling
/// brings.
fn webhook_secrets(
    c: &mut Check,
    at: &dyn Fn(&str) -> String,
    inst: &super::raw::RawInstance,
    adapter: &crate::adapter::Adapter,
    secrets: &BTreeMap<String, Vec<Secret>>,
) {
    let poll_only = inst.poll
        && !inst.secrets.contains_key(
            adapter
                .spec()
                .webhook
                .as_ref()
                .map_or("", |w| w.signature.secret_name()),
        );
    if let Some(w) = adapter.spec().webhook.as_ref().filter(|_| !poll_only) {
        for extra in w.signature.secret_names().into_iter().skip(1) {
            if !inst.secrets.contains_key(extra) {
                c.issue(
                    &at(&format!("secrets.{extra}")),
                    format!(
                        "adapter '{}' needs the '{extra}' secret as \"${{ENV_VAR}}\"",
                        inst.adapter
                    ),
                );
            }
        }
        let name = w.signature.secret_name();
        match secrets.get(name) {
            None if !inst.secrets.contains_key(name) => c.issue(
                &at(&format!("secrets.{name}")),
                format!(
                    "adapter '{}' signs webhooks; give its secret as \"${{ENV_VAR}}\"",
                    inst.adapter
                ),
            ),
            Some(values) if matches!(w.signature, SignatureSpec::StandardWebhooks { .. }) => {
                for v in values {
                    if crate::adapter::signature::standard_webhooks_key(v.expose()).is_none() {
                        c.issue(
                            &at(&format!("secrets.{name}")),
                            format!(
                                "${{{}}} must be a Standard Webhooks secret: whsec_ followed by base64",
                                v.var
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}
