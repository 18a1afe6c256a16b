//! The console's HTML: the page frame, and how records are shown (maud escapes every value).
//! Personal data in raw bodies is masked unless the viewer asks to see it.

use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

/// What every page needs: its title, the CSRF token of the session for its forms, whether a
/// logout makes sense, and a notice to show (the outcome of the last action).
pub(super) struct Frame<'a> {
    pub title: &'a str,
    pub csrf: &'a str,
    pub login: bool,
    /// A read-only login: the page says actions are refused.
    pub read_only: bool,
    pub notice: Option<&'a str>,
}

pub(super) fn page(frame: &Frame<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(frame.title))
            body {
                header {
                    nav aria-label="Console" {
                        a href="/console" { "Overview" }
                        a href="/console/dead-letters" { "Dead letters" }
                        a href="/console/orders" { "Orders" }
                        a href="/console/fx" { "FX review" }
                        a href="/console/adapters" { "Adapters and rules" }
                        @if frame.login {
                            form method="post" action="/console/logout" class="inline" {
                                input type="hidden" name="csrf" value=(frame.csrf);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main {
                    h1 { (frame.title) }
                    @if frame.read_only {
                        p class="notice" { "Read-only login: pages show everything, actions are refused." }
                    }
                    @if let Some(n) = frame.notice {
                        p role="status" class="notice" { (n) }
                    }
                    (body)
                }
            }
        }
    }
}

/// Every page's head: the stylesheet (the only thing the CSP lets load) and no favicon
/// request.
fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · crossgate" }
            link rel="stylesheet" href="/console/style.css";
            link rel="icon" href="data:,";
        }
    }
}

pub(super) fn login_page(failed: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Log in"))
            body {
                main class="login" {
                    h1 { "crossgate console" }
                    @if failed {
                        p role="alert" class="error" { "That is not the API token." }
                    }
                    form method="post" action="/console/login" {
                        label for="token" { "API token" }
                        input id="token" name="token" type="password" autocomplete="current-password" required;
                        button type="submit" { "Log in" }
                    }
                }
            }
        }
    }
}

/// A hidden CSRF field.
pub(super) fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// Keys whose values are personal data in channel payloads (names, contact, addresses,
/// notes, network addresses): masked in a raw body until the viewer reveals it.
const PERSONAL_KEYS: &[&str] = &[
    "name",
    "email",
    "phone",
    "address",
    "street",
    "city",
    "zip",
    "postcode",
    "postal",
    "company",
    "note",
    "browser",
    "customer",
    "billing",
    "shipping_address",
    "buyer",
    "recipient",
    "contact",
    "first",
    "last",
    "province",
    "latitude",
    "longitude",
];

fn is_personal(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    // "ip" alone would match "shipping" and "description".
    let network = key == "ip" || key.ends_with("_ip") || key.contains("ip_address");
    network || PERSONAL_KEYS.iter().any(|k| key.contains(k))
}

/// A raw body for people: JSON pretty-printed with personal values masked; anything else is
/// not shown until revealed (its personal data cannot be told apart).
pub(super) fn masked_body(encoding: &str, data: &str) -> Option<String> {
    if encoding != "utf-8" {
        return None;
    }
    let mut v: Value = serde_json::from_str(data).ok()?;
    mask(&mut v, false);
    serde_json::to_string_pretty(&v).ok()
}

fn mask(v: &mut Value, personal: bool) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                mask(x, personal || is_personal(k));
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| mask(x, personal)),
        Value::String(s) if personal && !s.is_empty() => *s = "•••".into(),
        Value::Number(_) if personal => *v = Value::String("•••".into()),
        _ => {}
    }
}

/// The raw body as sent, pretty-printed when it is JSON.
pub(super) fn revealed_body(encoding: &str, data: &str) -> String {
    if encoding == "utf-8"
        && let Ok(v) = serde_json::from_str::<Value>(data)
    {
        return serde_json::to_string_pretty(&v).unwrap_or_else(|_| data.to_string());
    }
    data.to_string()
}

/// The console's stylesheet (served as a file: the CSP allows no inline style).
pub(super) const STYLE: &str = r#"
:root { font-family: system-ui, sans-serif; color: #1d1d1f; background: #fafafa; }
body { margin: 0; }
header { background: #1d2a3a; padding: 0.5rem 1rem; }
nav { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; }
nav a, nav button { color: #fff; text-decoration: none; font-size: 1rem; }
nav button { background: none; border: 1px solid #fff; border-radius: 4px; cursor: pointer; }
form.inline { display: inline; margin-left: auto; }
main { padding: 1rem; max-width: 80rem; }
main.login { max-width: 24rem; margin: 4rem auto; }
main.login input, main.login button { display: block; width: 100%; margin: 0.5rem 0; padding: 0.5rem; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0 1.5rem; }
th, td { text-align: left; padding: 0.35rem 0.6rem; border-bottom: 1px solid #ddd; vertical-align: top; }
th { background: #eef1f5; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.table-wrap { overflow-x: auto; }
pre { background: #fff; border: 1px solid #ddd; padding: 0.75rem; overflow-x: auto; max-height: 30rem; }
.notice { background: #e8f4ea; border-left: 4px solid #2e7d32; padding: 0.5rem; }
.error { background: #fdecea; border-left: 4px solid #c62828; padding: 0.5rem; }
.hold { color: #8a4b00; font-weight: 600; }
figure.chart { margin: 0 0 1.5rem; max-width: 48rem; }
figure.chart svg { background: #fff; border: 1px solid #ddd; }
.actions { display: flex; flex-wrap: wrap; gap: 0.75rem; margin: 1rem 0; }
.actions button, form button { padding: 0.4rem 0.9rem; }
label { font-weight: 600; margin-right: 0.4rem; }
@media (max-width: 40rem) { th, td { padding: 0.25rem; font-size: 0.9rem; } main { padding: 0.5rem; } }
"#;

/// A filter's fields as a query string, leaving out the empty ones (links and redirects that
/// keep a page's filter).
pub(super) fn query<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a Option<String>)>,
) -> url::form_urlencoded::Serializer<'static, String> {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_values_are_masked_and_the_rest_kept() {
        let body = r#"{"order":{"id":7,"email":"bob@example.com","total_price":"10.00",
            "shipping_address":{"address1":"1 Main St","zip":"12345","country_code":"US"},
            "customer":{"id":99,"first_name":"Bob"},"line_items":[{"quantity":"one","name":"Mug"}]}}"#;
        let out = masked_body("utf-8", body).unwrap();
        for secret in ["bob@example.com", "1 Main St", "12345", "Bob", "99"] {
            assert!(!out.contains(secret), "{secret} shown: {out}");
        }
        for kept in ["10.00", "\"one\"", "\"id\": 7"] {
            assert!(out.contains(kept), "{kept} hidden: {out}");
        }
        assert_eq!(masked_body("base64", "AAAA"), None);
        assert_eq!(masked_body("utf-8", "<xml/>"), None);
    }
}
