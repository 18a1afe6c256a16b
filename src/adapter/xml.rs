//! XML payloads (eBay Trading, PrestaShop webservice, Amazon MWS, WeChat Pay v2) read into the
//! same document tree as JSON, so one mapping language serves every format.
//!
//! Tree shape:
//! - the root element is a key of the document: `GetOrdersResponse.OrderArray.Order`;
//! - an element with only text is a string; an element with attributes or children is an object
//!   whose attributes are `@name` keys and whose text (if any) is `#text`;
//! - repeated child elements become an array (paths treat a single element as a one-element
//!   array, so `Order[*]` works either way);
//! - namespace prefixes are dropped (local names only); CDATA is text.
//!
//! Safety: any `<!DOCTYPE` is refused (no DTD, so no entity expansion: billion laughs and XXE
//! cannot start); only the five predefined entities and character references are resolved;
//! nesting deeper than [`MAX_DEPTH`] is refused; building is iterative (no recursion) and linear
//! in the input (each element finds its siblings of the same name through an index, not a scan).
//! [`parse_xml_capped`] adds limits on bytes, elements and depth for bodies read before they are
//! known to be authentic (WeChat Pay signs inside the body).

use std::borrow::Cow;
use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};

use super::tree::{Node, ParseError};

/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 256;

/// Limits for [`parse_xml_capped`]; the first one crossed ends the parse.
#[derive(Debug, Clone, Copy)]
pub struct XmlCaps {
    pub max_bytes: usize,
    pub max_elements: usize,
    /// Element nesting, the root element being depth 1.
    pub max_depth: usize,
}

impl XmlCaps {
    /// What an authenticated body may use: the server's body limit bounds the bytes.
    pub const TRUSTED: XmlCaps = XmlCaps {
        max_bytes: usize::MAX,
        max_elements: usize::MAX,
        max_depth: MAX_DEPTH,
    };
}

/// From this many children on, a frame finds same-named siblings through a hash index: a
/// linear scan per child would make N distinct siblings cost O(N²).
const INDEX_FROM: usize = 32;

struct Frame {
    name: String,
    entries: Vec<(Cow<'static, str>, Node<'static>)>,
    /// Child name → its position in `entries`, once there are more than [`INDEX_FROM`].
    index: Option<HashMap<String, usize>>,
    has_markup: bool,
    text: String,
}

impl Frame {
    fn new(name: String) -> Self {
        Self {
            name,
            entries: Vec::new(),
            index: None,
            has_markup: false,
            text: String::new(),
        }
    }

    fn into_node(self) -> (String, Node<'static>) {
        let node = if !self.has_markup {
            Node::String(Cow::Owned(self.text))
        } else {
            let mut entries = self.entries;
            if !self.text.trim().is_empty() {
                entries.push((Cow::Borrowed("#text"), Node::String(Cow::Owned(self.text))));
            }
            Node::Object(entries)
        };
        (self.name, node)
    }

    fn add_child(&mut self, key: String, node: Node<'static>) {
        self.has_markup = true;
        let found = match &self.index {
            Some(index) => index.get(&key).copied(),
            None => self.entries.iter().position(|(k, _)| *k == key),
        };
        if let Some(at) = found {
            let existing = &mut self.entries[at].1;
            match existing {
                Node::Array(items) => items.push(node),
                other => {
                    let first = std::mem::replace(other, Node::Null);
                    *other = Node::Array(vec![first, node]);
                }
            }
            return;
        }
        if let Some(index) = &mut self.index {
            index.insert(key.clone(), self.entries.len());
        }
        self.entries.push((Cow::Owned(key), node));
        if self.index.is_none() && self.entries.len() > INDEX_FROM {
            let index = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.to_string(), i))
                .collect();
            self.index = Some(index);
        }
    }
}

fn err(msg: impl Into<String>) -> ParseError {
    ParseError(msg.into())
}

/// What went wrong, without the element names quick-xml quotes (they come from the payload).
fn describe_xml_error(e: &quick_xml::Error) -> String {
    use quick_xml::errors::{Error, IllFormedError};
    match e {
        Error::Syntax(s) => s.to_string(),
        Error::IllFormed(IllFormedError::MissingEndTag(_)) => "an element is not closed".into(),
        Error::IllFormed(IllFormedError::UnmatchedEndTag(_)) => {
            "an end tag has no start tag".into()
        }
        Error::IllFormed(IllFormedError::MismatchedEndTag { .. }) => {
            "an end tag does not match its start tag".into()
        }
        Error::IllFormed(_) => "ill-formed markup".into(),
        Error::InvalidAttr(_) => "a malformed attribute".into(),
        Error::Encoding(_) => "text that is not valid UTF-8".into(),
        Error::Escape(_) => "a bad escape".into(),
        Error::Namespace(_) => "a bad namespace".into(),
        Error::Io(_) => "the body could not be read".into(),
    }
}

fn count_element(elements: &mut usize, max: usize) -> Result<(), ParseError> {
    *elements += 1;
    if *elements > max {
        return Err(err(format!("the XML has more than {max} elements")));
    }
    Ok(())
}

fn local(name: &str) -> String {
    match name.rsplit_once(':') {
        Some((_, l)) => l.to_string(),
        None => name.to_string(),
    }
}

fn open(start: &BytesStart<'_>) -> Result<Frame, ParseError> {
    let mut frame = Frame::new(local(start.name().as_ref()));
    for attr in start.attributes().with_checks(true) {
        // quick-xml's attribute messages are positions only (no names or values).
        let attr = attr.map_err(|e| err(format!("bad attribute: {e}")))?;
        let key = attr.key.as_ref();
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|_| err("an attribute value has an unknown entity or a bad escape"))?;
        frame.has_markup = true;
        frame.entries.push((
            Cow::Owned(format!("@{}", local(key))),
            Node::String(Cow::Owned(value.into_owned())),
        ));
    }
    Ok(frame)
}

/// Parses an XML document (UTF-8, optional BOM) into a tree.
pub fn parse_xml(bytes: &[u8]) -> Result<Node<'static>, ParseError> {
    parse_xml_capped(bytes, XmlCaps::TRUSTED)
}

/// Parses like [`parse_xml`] within `caps`, refusing as soon as one is crossed.
pub fn parse_xml_capped(bytes: &[u8], caps: XmlCaps) -> Result<Node<'static>, ParseError> {
    if bytes.len() > caps.max_bytes {
        return Err(err(format!(
            "the XML body is over {} bytes",
            caps.max_bytes
        )));
    }
    let depth_cap = caps.max_depth.min(MAX_DEPTH);
    let mut elements = 0usize;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| err("the body is not UTF-8"))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Frame> = vec![Frame::new(String::new())];
    let mut saw_root = false;
    loop {
        let event = reader.read_event().map_err(|e| {
            err(format!(
                "not well-formed XML at byte {}: {}",
                reader.error_position(),
                describe_xml_error(&e)
            ))
        })?;
        match event {
            Event::DocType(_) => {
                return Err(err("XML with a DOCTYPE is refused (no DTDs, no entities)"));
            }
            Event::Decl(decl) => {
                if let Some(Ok(enc)) = decl.encoding() {
                    let enc = enc.to_ascii_lowercase();
                    if enc != "utf-8" && enc != "utf8" {
                        return Err(err(format!(
                            "XML declares encoding {enc}; only UTF-8 is accepted"
                        )));
                    }
                }
            }
            Event::Start(start) => {
                // The stack holds the document frame, so its length is the new element's depth.
                if stack.len() > depth_cap {
                    return Err(err(format!("XML nesting deeper than {depth_cap} levels")));
                }
                count_element(&mut elements, caps.max_elements)?;
                if stack.len() == 1 {
                    if saw_root {
                        return Err(err("more than one root element"));
                    }
                    saw_root = true;
                }
                stack.push(open(&start)?);
            }
            Event::Empty(start) => {
                if stack.len() > depth_cap {
                    return Err(err(format!("XML nesting deeper than {depth_cap} levels")));
                }
                count_element(&mut elements, caps.max_elements)?;
                if stack.len() == 1 {
                    if saw_root {
                        return Err(err("more than one root element"));
                    }
                    saw_root = true;
                }
                let (name, node) = open(&start)?.into_node();
                stack
                    .last_mut()
                    .expect("document frame")
                    .add_child(name, node);
            }
            Event::End(_) => {
                let frame = stack.pop().expect("reader checks end names");
                let (name, node) = frame.into_node();
                stack
                    .last_mut()
                    .ok_or_else(|| err("unbalanced end tag"))?
                    .add_child(name, node);
            }
            Event::Text(t) => {
                let content = t.xml_content(quick_xml::XmlVersion::Implicit1_0);
                if stack.len() == 1 {
                    if !content.trim().is_empty() {
                        return Err(err("text outside the root element"));
                    }
                } else {
                    stack.last_mut().expect("frame").text.push_str(&content);
                }
            }
            Event::CData(c) => {
                let content = c.into_inner();
                stack.last_mut().expect("frame").text.push_str(&content);
            }
            Event::GeneralRef(r) => {
                let frame = stack.last_mut().expect("frame");
                if r.is_char_ref() {
                    let ch = r
                        .resolve_char_ref()
                        .map_err(|_| err("bad character reference"))?
                        .ok_or_else(|| err("bad character reference"))?;
                    frame.text.push(ch);
                } else {
                    let name: &str = &r;
                    let resolved = resolve_predefined_entity(name).ok_or_else(|| {
                        err("unknown entity (only the five predefined XML entities are accepted)")
                    })?;
                    frame.text.push_str(resolved);
                }
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if stack.len() != 1 {
        return Err(err("the document ends inside an element"));
    }
    if !saw_root {
        return Err(err("no root element"));
    }
    let doc = stack.pop().expect("document frame");
    Ok(Node::Object(doc.entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn s(n: Option<&Node>) -> Option<String> {
        n.and_then(Node::scalar_text).map(str::to_string)
    }

    #[test]
    fn shapes() {
        let doc = parse_xml(
            "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<r:Resp xmlns=\"urn:x\" xmlns:r=\"urn:r\"><Total currencyID=\"USD\">1.0</Total><Item><Id>1</Id></Item><Item><Id>2</Id></Item><Name><![CDATA[A & B]]></Name><E/><Esc>a &amp; b &#x41;</Esc></r:Resp>"
                .as_bytes(),
        )
        .unwrap();
        let resp = doc.get("Resp").unwrap();
        let total = resp.get("Total").unwrap();
        assert_eq!(s(total.get("@currencyID")).as_deref(), Some("USD"));
        assert_eq!(s(total.get("#text")).as_deref(), Some("1.0"));
        let Node::Array(items) = resp.get("Item").unwrap() else {
            panic!()
        };
        assert_eq!(items.len(), 2);
        assert_eq!(s(resp.get("Name")).as_deref(), Some("A & B"));
        assert_eq!(s(resp.get("E")).as_deref(), Some(""));
        assert_eq!(s(resp.get("Esc")).as_deref(), Some("a & b A"));
    }

    #[test]
    fn many_distinct_siblings_build_linearly() {
        // 100,000 distinct siblings: a per-child scan of the siblings made this O(N²) (7-10 s in
        // a release build, minutes here); with the index it is one pass. Repeated names still
        // become arrays once the index is in use.
        let mut doc = String::from("<xml>");
        for i in 0..100_000 {
            doc.push_str(&format!("<e{i}/>"));
        }
        doc.push_str("<e7>again</e7><e99999>again</e99999></xml>");
        let tree = parse_xml(doc.as_bytes()).unwrap();
        let Some(Node::Object(entries)) = tree.get("xml") else {
            panic!("an object")
        };
        assert_eq!(entries.len(), 100_000);
        for name in ["e7", "e99999"] {
            let Some(Node::Array(items)) = tree.get("xml").unwrap().get(name) else {
                panic!("{name} repeated is an array")
            };
            assert_eq!(items.len(), 2);
        }
    }

    #[test]
    fn caps_refuse_at_the_first_one_crossed() {
        let caps = XmlCaps {
            max_bytes: 1_000,
            max_elements: 4,
            max_depth: 2,
        };
        assert!(parse_xml_capped(b"<xml><a>1</a><b>2</b><c>3</c></xml>", caps).is_ok());
        let e = parse_xml_capped(b"<xml><a/><b/><c/><d/></xml>", caps).unwrap_err();
        assert!(e.0.contains("more than 4 elements"), "{e}");
        let e = parse_xml_capped(b"<xml><a><b/></a></xml>", caps).unwrap_err();
        assert!(e.0.contains("deeper than 2"), "{e}");
        let e = parse_xml_capped(&[b' '; 1_001], caps).unwrap_err();
        assert!(e.0.contains("over 1000 bytes"), "{e}");
        // The element cap ends the parse where it is crossed: the malformed rest is never read.
        let mut hostile = b"<xml><a/><b/><c/><d/><e/>".to_vec();
        hostile.extend_from_slice(b"<<<not xml");
        assert!(
            parse_xml_capped(&hostile, caps)
                .unwrap_err()
                .0
                .contains("elements")
        );
    }

    #[test]
    fn errors_do_not_echo_names_from_the_payload() {
        for doc in [
            &b"<zqcanary><b></zqcanary2>"[..],
            b"<a>&zqcanary;</a>",
            b"<a><zqcanary>",
        ] {
            let e = parse_xml(doc).unwrap_err();
            assert!(!e.0.contains("zqcanary"), "{e}");
        }
    }

    #[test]
    fn attacks_are_refused_fast_without_reading_files() {
        let billion = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>"#;
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>"#;
        let external = r#"<!DOCTYPE x SYSTEM "http://127.0.0.1:6379/"><x/>"#;
        for (name, doc) in [
            ("billion laughs", billion),
            ("xxe", xxe),
            ("external dtd", external),
        ] {
            let t = Instant::now();
            let e = parse_xml(doc.as_bytes()).unwrap_err();
            assert!(e.0.contains("DOCTYPE"), "{name}: {e}");
            assert!(t.elapsed() < Duration::from_millis(100), "{name}");
        }
        // An entity used without a DTD is unknown.
        assert!(
            parse_xml(b"<a>&xxe;</a>")
                .unwrap_err()
                .0
                .contains("unknown entity")
        );
        // 100,000-deep nesting: refused quickly, no stack overflow.
        let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        let t = Instant::now();
        assert!(parse_xml(deep.as_bytes()).unwrap_err().0.contains("deeper"));
        assert!(t.elapsed() < Duration::from_millis(200));
        assert!(parse_xml(b"<a><b></a>").is_err());
        assert!(parse_xml(b"<a/><b/>").is_err());
        assert!(parse_xml(b"<a x=\"1\" x=\"2\"/>").is_err());
        assert!(parse_xml("<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>".as_bytes()).is_err());
        assert!(parse_xml(b"<a>").is_err());
        assert!(parse_xml(b"").is_err());
    }
}
