//! Paths into a document tree, as adapter files write them.
//!
//! Syntax: `a.b.c`, `items[0].sku`, `items[*].price` (every element), `["key.with.dots"]`.
//! A path is relative to the current node (the element of the array being mapped, or the record
//! root). Two anchors change that: `^` / `^.a.b` start at the record root (the order or product
//! object), `$` / `$.a.b` at the document root. `@attr` and `#text` are plain keys for XML
//! attributes and text.
//!
//! XML makes "one child" and "many children" look different, so an index `[0]` or `[*]` applied
//! to a value that is not an array treats it as a one-element array.

use std::fmt;

use super::tree::Node;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
    Wildcard,
    /// `[key=value]`: the array elements whose `key` is `value` (Amazon's typed breakdowns).
    Filter {
        key: String,
        value: String,
    },
}

/// Where a path starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Current,
    Record,
    Document,
}

/// The three nodes a path can start from, and the channel's "no value" texts.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub document: &'a Node<'a>,
    pub record: &'a Node<'a>,
    pub current: &'a Node<'a>,
    /// Scalar texts the channel uses for "absent" (e.g. "null").
    pub absent: &'a [String],
    /// The channel instance's settings (`setting = "…"` expressions).
    pub settings: &'a std::collections::BTreeMap<String, String>,
}

static NO_SETTINGS: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();

impl<'a> Scope<'a> {
    pub fn new(document: &'a Node<'a>) -> Self {
        Self {
            document,
            record: document,
            current: document,
            absent: &[],
            settings: &NO_SETTINGS,
        }
    }

    pub fn with_settings(self, settings: &'a std::collections::BTreeMap<String, String>) -> Self {
        Self { settings, ..self }
    }

    pub fn with_absent(self, absent: &'a [String]) -> Self {
        Self { absent, ..self }
    }

    pub fn with_record(self, record: &'a Node<'a>) -> Self {
        Self {
            record,
            current: record,
            ..self
        }
    }

    pub fn with_current(self, current: &'a Node<'a>) -> Self {
        Self { current, ..self }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Path {
    anchor: Anchor,
    segments: Vec<Segment>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path '{path}': {reason}")]
pub struct PathError {
    pub path: String,
    pub reason: String,
}

impl Path {
    pub fn parse(text: &str) -> Result<Self, PathError> {
        let err = |reason: &str| PathError {
            path: text.to_string(),
            reason: reason.to_string(),
        };
        let (anchor, rest) = match text.as_bytes().first() {
            Some(b'$') => (Anchor::Document, &text[1..]),
            Some(b'^') => (Anchor::Record, &text[1..]),
            _ => (Anchor::Current, text),
        };
        let rest = if anchor == Anchor::Current {
            if rest.is_empty() {
                return Err(err("empty path"));
            }
            rest
        } else if rest.is_empty() {
            rest
        } else if let Some(r) = rest.strip_prefix('.') {
            if r.is_empty() {
                return Err(err("path ends with '.'"));
            }
            r
        } else if rest.starts_with('[') {
            rest
        } else {
            return Err(err("an anchor ('$' or '^') must be followed by '.' or '['"));
        };
        let mut segments = Vec::new();
        let bytes = rest.as_bytes();
        let mut i = 0;
        let mut expect_segment = true;
        while i < bytes.len() {
            match bytes[i] {
                b'.' => {
                    if expect_segment {
                        return Err(err("empty segment"));
                    }
                    expect_segment = true;
                    i += 1;
                }
                b'[' => {
                    let close = rest[i..]
                        .find(']')
                        .map(|p| p + i)
                        .ok_or_else(|| err("unclosed '['"))?;
                    let inner = &rest[i + 1..close];
                    if inner == "*" {
                        segments.push(Segment::Wildcard);
                    } else if let Some((k, v)) = inner.split_once('=')
                        && !k.is_empty()
                        && !k.starts_with('"')
                    {
                        segments.push(Segment::Filter {
                            key: k.to_string(),
                            value: v.trim_matches('"').to_string(),
                        });
                    } else if let Some(quoted) =
                        inner.strip_prefix('"').and_then(|s| s.strip_suffix('"'))
                    {
                        segments.push(Segment::Key(quoted.to_string()));
                    } else {
                        let idx = inner
                            .parse::<usize>()
                            .map_err(|_| err("index must be a number, '*' or a quoted key"))?;
                        segments.push(Segment::Index(idx));
                    }
                    expect_segment = false;
                    i = close + 1;
                }
                _ => {
                    if !expect_segment {
                        return Err(err("expected '.' or '[' between segments"));
                    }
                    let end = rest[i..]
                        .find(['.', '['])
                        .map(|p| p + i)
                        .unwrap_or(rest.len());
                    segments.push(Segment::Key(rest[i..end].to_string()));
                    expect_segment = false;
                    i = end;
                }
            }
        }
        if expect_segment && !segments.is_empty() {
            return Err(err("path ends with '.'"));
        }
        Ok(Self {
            anchor,
            segments,
            text: text.to_string(),
        })
    }

    pub fn anchor(&self) -> Anchor {
        self.anchor
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// True when the path can match several nodes (`[*]` or a filter).
    pub fn has_wildcard(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Wildcard | Segment::Filter { .. }))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn start<'a>(&self, scope: Scope<'a>) -> &'a Node<'a> {
        match self.anchor {
            Anchor::Current => scope.current,
            Anchor::Record => scope.record,
            Anchor::Document => scope.document,
        }
    }

    /// Resolves a path without wildcards to at most one node. `null` counts as absent.
    pub fn get<'a>(&self, scope: Scope<'a>) -> Option<&'a Node<'a>> {
        let mut node = self.start(scope);
        for seg in &self.segments {
            node = match (seg, node) {
                (Segment::Key(k), n) => n.get(k)?,
                (Segment::Index(i), Node::Array(items)) => items.get(*i)?,
                (Segment::Index(0), n) => n,
                (Segment::Index(_), _) => return None,
                (Segment::Wildcard, _) => return None,
                (Segment::Filter { key, value }, n) => first_match(n, key, value)?,
            };
        }
        (!node.is_null()).then_some(node)
    }

    /// Resolves a path that may contain `[*]` to every matching non-null node, in order.
    pub fn get_all<'a>(&self, scope: Scope<'a>) -> Vec<&'a Node<'a>> {
        let mut out = Vec::new();
        collect(self.start(scope), &self.segments, &mut out);
        out
    }

    /// The elements of the array at this path (a single non-array value counts as one element).
    pub fn elements<'a>(&self, scope: Scope<'a>) -> Vec<&'a Node<'a>> {
        if self.has_wildcard() {
            return self.get_all(scope);
        }
        match self.get(scope) {
            Some(Node::Array(items)) => items.iter().filter(|n| !n.is_null()).collect(),
            Some(n) => vec![n],
            None => Vec::new(),
        }
    }
}

fn collect<'a>(node: &'a Node<'a>, segments: &[Segment], out: &mut Vec<&'a Node<'a>>) {
    let Some((seg, rest)) = segments.split_first() else {
        if !node.is_null() {
            out.push(node);
        }
        return;
    };
    match (seg, node) {
        (Segment::Key(k), n) => {
            if let Some(child) = n.get(k) {
                collect(child, rest, out);
            }
        }
        (Segment::Index(i), Node::Array(items)) => {
            if let Some(child) = items.get(*i) {
                collect(child, rest, out);
            }
        }
        (Segment::Index(0), n) => collect(n, rest, out),
        (Segment::Index(_), _) => {}
        (Segment::Wildcard, Node::Array(items)) => {
            for child in items {
                collect(child, rest, out);
            }
        }
        (Segment::Wildcard, Node::Null) => {}
        (Segment::Wildcard, n) => collect(n, rest, out),
        (Segment::Filter { key, value }, Node::Array(items)) => {
            for child in items.iter().filter(|c| matches_filter(c, key, value)) {
                collect(child, rest, out);
            }
        }
        (Segment::Filter { key, value }, n) => {
            if matches_filter(n, key, value) {
                collect(n, rest, out);
            }
        }
    }
}

fn matches_filter(node: &Node<'_>, key: &str, value: &str) -> bool {
    node.get(key).and_then(Node::scalar_text) == Some(value)
}

/// The first element (or the node itself, when it is not an array) matching a filter.
fn first_match<'a>(node: &'a Node<'a>, key: &str, value: &str) -> Option<&'a Node<'a>> {
    match node {
        Node::Array(items) => items.iter().find(|c| matches_filter(c, key, value)),
        n => matches_filter(n, key, value).then_some(n),
    }
}

impl<'de> serde::Deserialize<'de> for Path {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        Path::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::tree::parse_json;

    #[test]
    fn parses_and_resolves() {
        let doc = parse_json(
            br#"{"order":{"id":7,"items":[{"sku":"A","p":"1.00"},{"sku":"B","p":"2.00"}],"k.d":1,"n":null}}"#,
        )
        .unwrap();
        let top = Scope::new(&doc);
        let order = Path::parse("order").unwrap().get(top).unwrap();
        let scope = top.with_record(order);
        assert_eq!(
            Path::parse("id").unwrap().get(scope),
            Some(&Node::Number("7".into()))
        );
        assert_eq!(
            Path::parse("$.order.items[1].sku").unwrap().get(scope),
            Some(&Node::String("B".into()))
        );
        assert_eq!(
            Path::parse("[\"k.d\"]").unwrap().get(scope),
            Some(&Node::Number("1".into()))
        );
        assert_eq!(Path::parse("n").unwrap().get(scope), None);
        let items = Path::parse("items").unwrap().elements(scope);
        assert_eq!(items.len(), 2);
        let line = scope.with_current(items[1]);
        assert_eq!(
            Path::parse("^.id").unwrap().get(line),
            Some(&Node::Number("7".into()))
        );
        assert_eq!(
            Path::parse("sku").unwrap().get(line),
            Some(&Node::String("B".into()))
        );
        let all: Vec<_> = Path::parse("items[*].p")
            .unwrap()
            .get_all(scope)
            .into_iter()
            .filter_map(Node::scalar_text)
            .collect();
        assert_eq!(all, ["1.00", "2.00"]);
        assert_eq!(Path::parse("$").unwrap().get(scope), Some(&doc));
        assert_eq!(Path::parse("^").unwrap().get(scope), Some(order));
    }

    #[test]
    fn single_value_acts_as_one_element_array() {
        let doc = parse_json(br#"{"Order":{"Id":"x"}}"#).unwrap();
        let scope = Scope::new(&doc);
        assert_eq!(
            Path::parse("Order[0].Id").unwrap().get(scope),
            Some(&Node::String("x".into()))
        );
        assert_eq!(Path::parse("Order[*].Id").unwrap().get_all(scope).len(), 1);
        assert_eq!(Path::parse("Order").unwrap().elements(scope).len(), 1);
    }

    #[test]
    fn filters_select_elements_by_a_key() {
        let doc = parse_json(
            br#"{"b":[{"type":"ITEM","v":"1.00"},{"type":"TAX","v":"0.20"},{"type":"TAX","v":"0.05"}]}"#,
        )
        .unwrap();
        let scope = Scope::new(&doc);
        assert_eq!(
            Path::parse("b[type=TAX].v").unwrap().get(scope),
            Some(&Node::String("0.20".into()))
        );
        assert_eq!(
            Path::parse("b[type=TAX].v").unwrap().get_all(scope).len(),
            2
        );
        assert_eq!(Path::parse("b[type=NONE].v").unwrap().get(scope), None);
        assert!(Path::parse("b[type=TAX].v").unwrap().has_wildcard());
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "", "a..b", "a.", "a[", "a[x]", ".a", "$x", "^x", "$.", "a[0]b",
        ] {
            assert!(Path::parse(bad).is_err(), "{bad:?}");
        }
    }
}
