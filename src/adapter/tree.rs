//! A document tree that every input format (JSON, XML, CSV) is read into before mapping.
//!
//! JSON is parsed strictly:
//! - numbers keep their exact text (serde_json's `arbitrary_precision`), so `19.999999999999999999`
//!   never silently becomes `20.0` and a 400-digit number is refused when it is read as an amount;
//! - a key repeated in one object is an error (`{"qty":1,"qty":-1}` is not "last wins");
//! - nesting is capped by serde_json's recursion limit (128);
//! - trailing garbage after the value is an error.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::projection::Projection;

/// serde_json hands arbitrary-precision numbers to a visitor as a one-entry map under this key.
/// A unit test pins it, so a serde_json change is caught here and not in production.
const SERDE_JSON_NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Objects with more keys than this are checked for duplicates by sorting, not pairwise.
const LINEAR_DUP_CHECK_MAX: usize = 16;

/// A document node. Strings and keys borrow from the input bytes where they can (no escapes),
/// so reading a payload allocates little.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    /// A number, as its exact source text.
    Number(Cow<'a, str>),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    /// Keys in document order; keys are unique.
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
    /// Present in the payload but not read by the adapter, so not materialized.
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl<'a> Node<'a> {
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            Node::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }

    /// Null, an empty string, or an empty array/object.
    pub fn is_blank(&self) -> bool {
        match self {
            Node::Null => true,
            Node::String(s) => s.trim().is_empty(),
            Node::Array(a) => a.is_empty(),
            Node::Object(o) => o.is_empty(),
            Node::Bool(_) | Node::Number(_) | Node::Skipped => false,
        }
    }

    /// The scalar text of a string, number or boolean.
    pub fn scalar_text(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            Node::Number(n) => Some(n),
            Node::Bool(true) => Some("true"),
            Node::Bool(false) => Some("false"),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "boolean",
            Node::Number(_) => "number",
            Node::String(_) => "string",
            Node::Array(_) => "array",
            Node::Object(_) => "object",
            Node::Skipped => "an unread value",
        }
    }

    /// Converts to a serde_json value (numbers stay exact).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Null | Node::Skipped => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => n
                .parse::<serde_json::Number>()
                .map(Value::Number)
                .unwrap_or_else(|_| Value::String(n.to_string())),
            Node::String(s) => Value::String(s.to_string()),
            Node::Array(a) => Value::Array(a.iter().map(Node::to_json).collect()),
            Node::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect::<serde_json::Map<_, _>>(),
            ),
        }
    }
}

/// Parses JSON bytes strictly (see the module docs). A UTF-8 byte-order mark is skipped.
pub fn parse_json(bytes: &[u8]) -> Result<Node<'_>, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let node = Node::deserialize(&mut de).map_err(|e| ParseError(json_error_message(&e)))?;
    de.end().map_err(|e| ParseError(json_error_message(&e)))?;
    Ok(node)
}

/// Parses JSON like [`parse_json`], but materializes only what `projection` names; everything
/// else is syntax-checked and left as [`Node::Skipped`].
pub fn parse_json_projected<'a>(
    bytes: &'a [u8],
    projection: &Projection,
) -> Result<Node<'a>, ParseError> {
    if projection.whole {
        return parse_json(bytes);
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let node = ProjectedSeed(projection)
        .deserialize(&mut de)
        .map_err(|e| ParseError(json_error_message(&e)))?;
    de.end().map_err(|e| ParseError(json_error_message(&e)))?;
    Ok(node)
}

/// Deserializes what a projection needs, skipping the rest.
struct ProjectedSeed<'p>(&'p Projection);

impl<'de> DeserializeSeed<'de> for ProjectedSeed<'_> {
    type Value = Node<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        if self.0.whole {
            Node::deserialize(d)
        } else {
            d.deserialize_any(ProjectedVisitor(self.0, PhantomData))
        }
    }
}

struct ProjectedVisitor<'p, 'de>(&'p Projection, PhantomData<&'de ()>);

impl<'de> Visitor<'de> for ProjectedVisitor<'_, 'de> {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    // Scalars read through a projection node are kept as they are.
    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(Cow::Owned(v.to_string())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(Cow::Owned(v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node<'de>, E> {
        Err(E::custom("floating-point numbers are not accepted"))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::new();
        match self.0.elements() {
            Some(elements) => {
                while let Some(item) = seq.next_element_seed(ProjectedSeed(elements))? {
                    items.push(item);
                }
            }
            None => {
                while seq.next_element::<Skip>()?.is_some() {
                    items.push(Node::Skipped);
                }
            }
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let Some(Text(first)) = map.next_key::<Text<'de>>()? else {
            return Ok(Node::Object(Vec::new()));
        };
        if first == SERDE_JSON_NUMBER_TOKEN {
            let text: String = map.next_value()?;
            return Ok(Node::Number(Cow::Owned(text)));
        }
        let mut entries: Vec<(Cow<'de, str>, Node<'de>)> = Vec::with_capacity(8);
        let mut key = first;
        loop {
            if entries.len() < LINEAR_DUP_CHECK_MAX && entries.iter().any(|(k, _)| *k == key) {
                return Err(duplicate(&key));
            }
            let value = match self.0.child(&key) {
                Some(child) => map.next_value_seed(ProjectedSeed(child))?,
                None => {
                    map.next_value::<Skip>()?;
                    Node::Skipped
                }
            };
            entries.push((key, value));
            match map.next_key::<Text<'de>>()? {
                Some(Text(k)) => key = k,
                None => break,
            }
        }
        if entries.len() > LINEAR_DUP_CHECK_MAX {
            let mut keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_ref()).collect();
            keys.sort_unstable();
            if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
                return Err(duplicate(w[0]));
            }
        }
        Ok(Node::Object(entries))
    }
}

/// A value the adapter does not read, checked and dropped. Unlike serde's `IgnoredAny` (which
/// serde_json skips with a loop of its own, outside its recursion limit) it descends through
/// `deserialize_any`, so the 128-level nesting cap holds in skipped subtrees as well.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        // Keys are strings; an arbitrary-precision number arrives as a one-entry map too.
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(Skip)
    }
}

fn json_error_message(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Eof => "the body ends before the JSON value is complete",
        serde_json::error::Category::Syntax => "the body is not valid JSON",
        serde_json::error::Category::Data => "the JSON is not acceptable",
        serde_json::error::Category::Io => "the body could not be read",
    };
    format!("{what}: {e}")
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor(PhantomData))
    }
}

/// A string that borrows from the input when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

struct NodeVisitor<'de>(PhantomData<&'de ()>);

impl<'de> Visitor<'de> for NodeVisitor<'de> {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(Cow::Owned(v.to_string())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(Cow::Owned(v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node<'de>, E> {
        // With arbitrary_precision serde_json never calls this; refusing keeps f64 out for good.
        Err(E::custom("floating-point numbers are not accepted"))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element::<Node<'de>>()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let Some(Text(first)) = map.next_key::<Text<'de>>()? else {
            return Ok(Node::Object(Vec::new()));
        };
        if first == SERDE_JSON_NUMBER_TOKEN {
            let text: String = map.next_value()?;
            return Ok(Node::Number(Cow::Owned(text)));
        }
        let mut entries: Vec<(Cow<'de, str>, Node<'de>)> = Vec::with_capacity(8);
        let mut key = first;
        loop {
            if entries.len() < LINEAR_DUP_CHECK_MAX && entries.iter().any(|(k, _)| *k == key) {
                return Err(duplicate(&key));
            }
            let value: Node<'de> = map.next_value()?;
            entries.push((key, value));
            match map.next_key::<Text<'de>>()? {
                Some(Text(k)) => key = k,
                None => break,
            }
        }
        if entries.len() > LINEAR_DUP_CHECK_MAX {
            let mut keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_ref()).collect();
            keys.sort_unstable();
            if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
                return Err(duplicate(w[0]));
            }
        }
        Ok(Node::Object(entries))
    }
}

/// A key repeated in one object. The key itself is payload text, so it is not quoted; serde_json
/// adds the line and column.
fn duplicate<E: de::Error>(_key: &str) -> E {
    E::custom("an object has the same key twice")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_exact_text() {
        let n = parse_json(
            br#"{"a": 19.999999999999999999, "b": 12345678901234567890123, "c": -0, "d": 1e400}"#,
        )
        .unwrap();
        assert_eq!(
            n.get("a"),
            Some(&Node::Number("19.999999999999999999".into()))
        );
        assert_eq!(
            n.get("b"),
            Some(&Node::Number("12345678901234567890123".into()))
        );
        assert_eq!(n.get("c"), Some(&Node::Number("-0".into())));
        assert_eq!(n.get("d"), Some(&Node::Number("1e+400".into())));
    }

    #[test]
    fn duplicate_keys_are_refused_small_and_large_objects() {
        let e = parse_json(br#"{"total":1,"total":-1}"#).unwrap_err();
        assert!(e.0.contains("same key twice"), "{e}");
        assert!(!e.0.contains("total"), "the key is payload text: {e}");
        let mut big = String::from("{");
        for i in 0..40 {
            big.push_str(&format!("\"k{i}\":{i},"));
        }
        big.push_str("\"k3\":0}");
        let e = parse_json(big.as_bytes()).unwrap_err();
        assert!(e.0.contains("same key twice") && !e.0.contains("k3"), "{e}");
        // Case twins are different keys.
        assert!(parse_json(br#"{"id":1,"ID":2}"#).is_ok());
    }

    #[test]
    fn nesting_is_capped() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let e = parse_json(deep.as_bytes()).unwrap_err();
        assert!(e.0.contains("recursion limit"), "{e}");
        let ok = "[".repeat(100) + &"]".repeat(100);
        assert!(parse_json(ok.as_bytes()).is_ok());
    }

    #[test]
    fn framing_errors() {
        assert!(parse_json(b"").is_err());
        assert!(parse_json(br#"{"id":1}}"#).is_err());
        assert!(parse_json(b"NaN").is_err());
        assert!(parse_json(b"not json").is_err());
        assert!(parse_json(b"\xEF\xBB\xBF{\"a\":1}").is_ok());
        assert!(parse_json(b"{\"a\":\"\xff\"}").is_err());
    }

    /// A listing adapter that reads `id`, `u`, `t`, `s` and `vs[*].sku`.
    fn listing_projection() -> Projection {
        let mut spec_text =
            String::from("name = \"t\"\nchannel_kind = \"web_shop\"\nformat = \"json\"\n");
        spec_text.push_str("[listing]\nexternal_id = \"^.id\"\nupdated_at = \"^.u\"\ntitle = \"^.t\"\nstatus = \"^.s\"\n");
        spec_text.push_str("each = \"vs\"\nsku = \"sku\"\n");
        let spec = crate::adapter::registry::parse_adapter(&spec_text, "t").unwrap();
        Projection::of(&spec)
    }

    #[test]
    fn projected_parse_builds_only_what_is_read() {
        let p = listing_projection();
        let doc = br#"{"id":1,"big":{"deep":[1,2,{"x":"y"}]},"vs":[{"sku":"A","junk":[1,2]},{"sku":"B"}],"t":"T","u":"2024-01-01T00:00:00Z","s":"active"}"#;
        let n = parse_json_projected(doc, &p).unwrap();
        assert_eq!(n.get("big"), Some(&Node::Skipped));
        assert_eq!(n.get("t"), Some(&Node::String("T".into())));
        let vs = n.get("vs").unwrap();
        let Node::Array(items) = vs else { panic!() };
        assert_eq!(items[0].get("sku"), Some(&Node::String("A".into())));
        assert_eq!(items[0].get("junk"), Some(&Node::Skipped));
        // Syntax errors and duplicate keys are still found, even in skipped parts.
        assert!(parse_json_projected(br#"{"big":{"a":1,}}"#, &p).is_err());
        assert!(parse_json_projected(br#"{"t":"a","t":"b"}"#, &p).is_err());
        assert!(parse_json_projected(br#"{"big":1,"big":2}"#, &p).is_err());
    }

    #[test]
    fn nesting_is_capped_in_skipped_subtrees_too() {
        let p = listing_projection();
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let doc = format!(r#"{{"id":1,"note":{deep},"t":"T"}}"#);
        let e = parse_json_projected(doc.as_bytes(), &p).unwrap_err();
        assert!(e.0.contains("recursion limit"), "{e}");
        // 100 levels in an unread subtree are fine, numbers and strings included.
        let ok = "[".repeat(100) + "1.50,\"x\",{\"k\":2}" + &"]".repeat(100);
        let doc = format!(r#"{{"id":1,"note":{ok},"t":"T"}}"#);
        assert_eq!(
            parse_json_projected(doc.as_bytes(), &p)
                .unwrap()
                .get("note"),
            Some(&Node::Skipped)
        );
    }

    #[test]
    fn to_json_round_trips_numbers() {
        let n = parse_json(br#"{"a":[1,2.50,"x",null,true]}"#).unwrap();
        assert_eq!(n.to_json().to_string(), r#"{"a":[1,2.50,"x",null,true]}"#);
    }
}
