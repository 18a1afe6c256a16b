//! The domain sections of the config: `[fx]`, `[tax]` (with each instance's own tax keys)
//! and `[jobs]`, validated into the settings types their domains define.

use super::raw::RawConfig;
use super::validate::Check;
use super::*;

/// `[fx]`.
pub(super) fn fx(c: &mut Check, raw: &RawConfig, base: &Path) -> crate::fx::FxSettings {
    let mut fx = crate::fx::FxSettings::default();
    {
        let f = &raw.fx;
        fx.reporting.clear();
        for (i, cur) in f.reporting_currencies.iter().enumerate() {
            match crate::model::CurrencyCode::parse(cur) {
                Ok(code) => fx.reporting.push(code),
                Err(e) => c.issue(
                    &format!("fx.reporting_currencies[{i}]"),
                    format!("'{cur}' {e}"),
                ),
            }
        }
        if f.reporting_currencies.is_empty() {
            c.issue(
                "fx.reporting_currencies",
                "name at least one currency".into(),
            );
        }
        if !(0..=31).contains(&f.max_age_days) {
            c.issue("fx.max_age_days", "must be between 0 and 31".into());
        }
        fx.max_age_days = f.max_age_days;
        match crate::fx::book::RoundingMode::parse(&f.rounding) {
            Some(m) => fx.rounding.default = m,
            None => c.issue(
                "fx.rounding",
                "must be half_up, half_even, down or up".into(),
            ),
        }
        for (cur, m) in &f.rounding_overrides {
            if crate::model::CurrencyCode::parse(cur).is_err() {
                c.issue(
                    &format!("fx.rounding_overrides.{cur}"),
                    "is not an ISO 4217 currency".into(),
                );
            }
            match crate::fx::book::RoundingMode::parse(m) {
                Some(mode) => {
                    fx.rounding.overrides.insert(cur.clone(), mode);
                }
                None => c.issue(
                    &format!("fx.rounding_overrides.{cur}"),
                    "must be half_up, half_even, down or up".into(),
                ),
            }
        }
        match chrono::NaiveTime::parse_from_str(&f.refresh_after, "%H:%M") {
            Ok(t) => fx.refresh_after = t,
            Err(_) => c.issue("fx.refresh_after", "must be HH:MM".into()),
        }
        fx.ecb_source = f.ecb_source.as_ref().map(|s| {
            if s.starts_with("https://") || s.starts_with("http://") {
                s.clone()
            } else {
                resolve_path(base, s).display().to_string()
            }
        });
        if let Some(m) = &f.manual_rates {
            let p = resolve_path(base, m);
            match std::fs::read_to_string(&p) {
                Ok(text) => {
                    // One issue per problem, each with the entry's line.
                    if let Err(problems) = crate::fx::rates::check_manual(&text) {
                        for problem in problems {
                            c.issue("fx.manual_rates", format!("{}: {problem}", p.display()));
                        }
                    }
                }
                Err(e) => c.issue("fx.manual_rates", format!("{}: {e}", p.display())),
            }
            fx.manual_rates = Some(p);
        }
        if let Some(cp) = &f.checkpoints {
            fx.checkpoints = checkpoints(c, cp, base);
        }
    }
    fx
}

fn checkpoints(
    c: &mut Check,
    raw: &super::raw::RawFxCheckpoints,
    base: &Path,
) -> Option<crate::fx::checkpoint::CheckpointSettings> {
    if raw.every_entries == 0 {
        c.issue("fx.checkpoints.every_entries", "must be at least 1".into());
    }
    if !(1..=86_400).contains(&raw.every_secs) {
        c.issue(
            "fx.checkpoints.every_secs",
            "must be between 1 and 86400".into(),
        );
    }
    let secret = c.secret("fx.checkpoints.key", &raw.key)?;
    let key = match crate::fx::checkpoint::SignKey::parse(secret.expose()) {
        Ok(k) => k,
        Err(e) => {
            c.issue(
                "fx.checkpoints.key",
                format!("${{{}}} holds {e}", secret.var),
            );
            return None;
        }
    };
    let file = raw.file.as_ref().map(|f| resolve_path(base, f));
    if let Some(dir) = file.as_ref().and_then(|f| f.parent())
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        c.issue(
            "fx.checkpoints.file",
            format!("{}: the directory does not exist", dir.display()),
        );
    }
    Some(crate::fx::checkpoint::CheckpointSettings {
        key,
        file,
        every_entries: raw.every_entries.max(1),
        every: std::time::Duration::from_secs(raw.every_secs.max(1)),
    })
}

fn country(c: &mut Check, at: &str, value: &Option<String>) -> Option<String> {
    if let Some(v) = value
        && crate::model::CountryCode::parse(v).is_err()
    {
        c.issue(at, format!("'{v}' is not an ISO 3166-1 alpha-2 country"));
    }
    value.clone()
}

fn ship_mode(c: &mut Check, at: &str, m: &str) -> crate::tax::ShipMode {
    match m {
        "courier" => crate::tax::ShipMode::Courier,
        "postal" => crate::tax::ShipMode::Postal,
        _ => {
            c.issue(at, "must be courier or postal".into());
            crate::tax::ShipMode::Courier
        }
    }
}

/// `[tax]`, and each instance's `tax` table (its own seller, warehouse and mode over the
/// defaults). `[tax]` is validated once; an instance's keys are validated where written.
pub(super) fn tax(c: &mut Check, raw: &RawConfig, base: &Path) -> crate::tax::TaxSettings {
    let rules_dir = resolve_path(base, &raw.tax.rules_dir);
    // No rules directory: no packs; cross-border orders are then held as tax_pending.
    let packs = match crate::tax::Packs::load_dir(&rules_dir) {
        _ if !rules_dir.exists() && raw.tax.rules_dir == "rules" => crate::tax::Packs::default(),
        Ok(p) => p,
        Err(problems) => {
            for m in problems {
                c.issue("tax.rules_dir", m);
            }
            crate::tax::Packs::default()
        }
    };
    let defaults = crate::tax::SellerSettings {
        seller_country: country(c, "tax.seller_country", &raw.tax.seller_country),
        ship_from: country(c, "tax.ship_from", &raw.tax.ship_from),
        mode: ship_mode(c, "tax.mode", &raw.tax.mode),
    };
    let mut instances = BTreeMap::new();
    for (i, inst) in raw.instances.iter().enumerate() {
        let Some(t) = &inst.tax else { continue };
        let at = |key: &str| format!("instance[{i}].tax.{key}");
        let own = crate::tax::SellerSettings {
            seller_country: country(c, &at("seller_country"), &t.seller_country)
                .or_else(|| defaults.seller_country.clone()),
            ship_from: country(c, &at("ship_from"), &t.ship_from)
                .or_else(|| defaults.ship_from.clone()),
            mode: t
                .mode
                .as_deref()
                .map_or(defaults.mode, |m| ship_mode(c, &at("mode"), m)),
        };
        instances.insert(inst.id.clone(), own);
    }
    crate::tax::TaxSettings {
        packs,
        seller: defaults,
        instances,
    }
}

/// `[jobs]`: the recommendation and ranking jobs.
pub(super) fn jobs(c: &mut Check, raw: &RawConfig) -> crate::reco::job::JobSettings {
    let j = &raw.jobs;
    for s in &j.strategies {
        if !crate::reco::models::STRATEGIES.contains(&s.as_str()) {
            c.issue(
                "jobs.strategies",
                format!(
                    "unknown strategy '{s}'; known: {}",
                    crate::reco::models::STRATEGIES.join(", ")
                ),
            );
        }
    }
    if j.strategies.is_empty() {
        c.issue("jobs.strategies", "must name at least one strategy".into());
    }
    if !(1..=500).contains(&j.list_len) {
        c.issue("jobs.list_len", "must be 1 to 500".into());
    }
    if !(1..=100_000).contains(&j.ranking_size) {
        c.issue("jobs.ranking_size", "must be 1 to 100000".into());
    }
    if !(j.half_life_days.is_finite() && j.half_life_days > 0.0) {
        c.issue(
            "jobs.half_life_days",
            "must be a positive number of days".into(),
        );
    }
    if j.rating_prior_count
        .is_some_and(|c| !(c.is_finite() && c >= 0.0))
    {
        c.issue("jobs.rating_prior_count", "must be zero or more".into());
    }
    if !(1..=20_000).contains(&j.ease_max_items) {
        c.issue(
            "jobs.ease_max_items",
            "must be 1 to 20000 (the model is items² × 12 bytes)".into(),
        );
    }
    if !(j.ease_lambda.is_finite() && j.ease_lambda > 0.0) {
        c.issue("jobs.ease_lambda", "must be more than zero".into());
    }
    if !(j.recency_half_life_orders.is_finite() && j.recency_half_life_orders >= 0.0) {
        c.issue(
            "jobs.recency_half_life_orders",
            "must be zero (off) or more".into(),
        );
    }
    let weights = &j.blend_weights;
    if !(weights.iter().all(|w| w.is_finite() && *w >= 0.0) && weights.iter().sum::<f32>() > 0.0) {
        c.issue(
            "jobs.blend_weights",
            "must be three weights (item_knn, ease, content), none negative, not all zero".into(),
        );
    }
    crate::reco::job::JobSettings {
        every: (j.every_secs > 0).then(|| Duration::from_secs(j.every_secs)),
        list_len: j.list_len,
        strategies: j.strategies.clone(),
        params: crate::reco::models::Params {
            ease_items: j.ease_max_items,
            ease_lambda: j.ease_lambda,
            recency_half_life: (j.recency_half_life_orders > 0.0)
                .then_some(j.recency_half_life_orders as f32),
            blend: j.blend_weights,
            ..Default::default()
        },
        half_life_days: j.half_life_days,
        ranking_size: j.ranking_size,
        exclude_purchased: j.exclude_purchased,
        rating_prior_count: j.rating_prior_count,
        batch: 2000,
    }
}

/// `[outbox]`: retries of commands to channels.
pub(super) fn outbox(c: &mut Check, raw: &RawConfig) -> super::OutboxSettings {
    let o = &raw.outbox;
    if !(1..=100).contains(&o.max_attempts) {
        c.issue("outbox.max_attempts", "must be 1 to 100".into());
    }
    if o.retry_base_ms == 0 || o.retry_base_ms > 3_600_000 {
        c.issue("outbox.retry_base_ms", "must be 1 to 3600000".into());
    }
    if o.retry_max_secs == 0 || o.retry_max_secs * 1000 < o.retry_base_ms {
        c.issue(
            "outbox.retry_max_secs",
            "must be at least retry_base_ms".into(),
        );
    }
    if !(1..=3600).contains(&o.claim_secs) {
        c.issue("outbox.claim_secs", "must be 1 to 3600".into());
    }
    if !(1..=720).contains(&o.idempotency_hours) {
        c.issue("outbox.idempotency_hours", "must be 1 to 720".into());
    }
    super::OutboxSettings {
        max_attempts: o.max_attempts,
        retry_base: std::time::Duration::from_millis(o.retry_base_ms),
        retry_max: std::time::Duration::from_secs(o.retry_max_secs),
        claim: std::time::Duration::from_secs(o.claim_secs),
        idempotency_ttl: std::time::Duration::from_secs(o.idempotency_hours * 3600),
    }
}
