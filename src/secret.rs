//! Secrets: only ever given as `${ENV_VAR}` references in config files, and never printed.

use std::collections::HashMap;
use std::fmt;

/// A resolved secret value. `Debug` and `Display` print `**REDACTED**`; use [`Secret::expose`]
/// at the one place the value is needed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: String,
    /// The environment variable it came from (safe to show).
    pub var: String,
    /// True when the variable was unset and the reference's development default was used.
    pub from_default: bool,
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// A secret for tests and tools that build configs in code.
    pub fn literal(var: &str, value: &str) -> Self {
        Self {
            value: value.to_string(),
            var: var.to_string(),
            from_default: false,
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(${{{}}} = **REDACTED**)", self.var)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

/// A parsed `${VAR}`, `${VAR:-default}` or `${VAR:?message}` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvRef {
    pub var: String,
    pub fallback: Fallback,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    None,
    /// `${VAR:-default}`: used when VAR is unset or empty.
    Default(String),
    /// `${VAR:?message}`: the message explains what to set.
    Required(String),
}

/// Parses a whole-string environment reference. Anything else (a literal secret, text around
/// the reference) is an error: secrets never live in config files.
pub fn parse_env_ref(text: &str) -> Result<EnvRef, String> {
    let inner = text
        .strip_prefix("${")
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| {
            "secrets must be environment references like \"${MY_SECRET}\", never literal values"
                .to_string()
        })?;
    let (var, fallback) = if let Some((v, d)) = inner.split_once(":-") {
        (v, Fallback::Default(d.to_string()))
    } else if let Some((v, m)) = inner.split_once(":?") {
        (v, Fallback::Required(m.to_string()))
    } else {
        (inner, Fallback::None)
    };
    let valid = !var.is_empty()
        && var
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && !var.as_bytes()[0].is_ascii_digit();
    if !valid {
        return Err(format!(
            "'{var}' is not an environment variable name (A-Z, 0-9, _)"
        ));
    }
    Ok(EnvRef {
        var: var.to_string(),
        fallback,
    })
}

/// Resolves a reference against an environment map.
pub fn resolve(r: &EnvRef, env: &HashMap<String, String>) -> Result<Secret, String> {
    match env.get(&r.var).filter(|v| !v.is_empty()) {
        Some(v) => Ok(Secret {
            value: v.clone(),
            var: r.var.clone(),
            from_default: false,
        }),
        None => match &r.fallback {
            Fallback::Default(d) => Ok(Secret {
                value: d.clone(),
                var: r.var.clone(),
                from_default: true,
            }),
            Fallback::Required(msg) => {
                Err(format!("environment variable {} is not set: {msg}", r.var))
            }
            Fallback::None => Err(format!("environment variable {} is not set", r.var)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let env: HashMap<String, String> = [("A".to_string(), "s3cret".to_string())]
            .into_iter()
            .collect();
        let a = resolve(&parse_env_ref("${A}").unwrap(), &env).unwrap();
        assert_eq!(a.expose(), "s3cret");
        assert!(!a.from_default);
        assert_eq!(format!("{a:?}"), "Secret(${A} = **REDACTED**)");
        assert_eq!(a.to_string(), "**REDACTED**");
        let b = resolve(&parse_env_ref("${B:-dev}").unwrap(), &env).unwrap();
        assert_eq!(b.expose(), "dev");
        assert!(b.from_default);
        let e = resolve(&parse_env_ref("${B:?set it in the vault}").unwrap(), &env).unwrap_err();
        assert!(e.contains("B is not set: set it in the vault"));
        assert!(resolve(&parse_env_ref("${B}").unwrap(), &env).is_err());
        for bad in ["plain", "x${A}", "${a}", "${}", "${1A}", "${A"] {
            assert!(parse_env_ref(bad).is_err(), "{bad}");
        }
    }
}
