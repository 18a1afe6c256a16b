//! CSV payloads (phone orders, file imports) read into the document tree.
//!
//! Every row is an object of header → text, plus `#line` (its line number in the file, for
//! error reports). Without grouping the document is `{"rows": [...]}`. With `group_by = "col"`,
//! consecutive-or-not rows sharing that column form one group:
//! `{"groups": [{<the first row's columns>, "#line": …, "rows": [...]}, …]}`, in order of first
//! appearance, so one order can span several line rows.

use std::borrow::Cow;

use super::tree::{Node, ParseError};

#[derive(Debug, Clone)]
pub struct CsvOptions {
    pub delimiter: u8,
    pub group_by: Option<String>,
}

/// Parses CSV with a header row.
pub fn parse_csv(bytes: &[u8], opts: &CsvOptions) -> Result<Node<'static>, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(opts.delimiter)
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::None)
        .from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ParseError(format!("the header row cannot be read: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if headers.iter().any(String::is_empty) {
        return Err(ParseError("the header row has an empty column name".into()));
    }
    if let Some(g) = &opts.group_by
        && !headers.contains(g)
    {
        return Err(ParseError(format!(
            "the header row has no '{g}' column to group by"
        )));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            ParseError(format!("line {line}: {e}"))
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let mut entries: Vec<(Cow<'static, str>, Node<'static>)> = headers
            .iter()
            .zip(record.iter())
            .map(|(h, v)| {
                (
                    Cow::Owned(h.clone()),
                    Node::String(Cow::Owned(v.to_string())),
                )
            })
            .collect();
        entries.push((
            Cow::Borrowed("#line"),
            Node::Number(Cow::Owned(line.to_string())),
        ));
        rows.push(Node::Object(entries));
    }
    let Some(group_col) = &opts.group_by else {
        return Ok(Node::Object(vec![(
            Cow::Borrowed("rows"),
            Node::Array(rows),
        )]));
    };
    let mut order: Vec<String> = Vec::new();
    let mut groups: std::collections::HashMap<String, Vec<Node<'static>>> = Default::default();
    for row in rows {
        let key = row
            .get(group_col)
            .and_then(Node::scalar_text)
            .unwrap_or_default()
            .trim()
            .to_string();
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push(row);
    }
    let groups: Vec<Node<'static>> = order
        .into_iter()
        .map(|key| {
            let rows = groups.remove(&key).unwrap_or_default();
            let mut entries = match rows.first() {
                Some(Node::Object(first)) => first.clone(),
                _ => Vec::new(),
            };
            entries.push((Cow::Borrowed("rows"), Node::Array(rows)));
            Node::Object(entries)
        })
        .collect();
    Ok(Node::Object(vec![(
        Cow::Borrowed("groups"),
        Node::Array(groups),
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_rows_and_keeps_line_numbers() {
        let text = "order_ref,sku,qty\nA,X,1\nB,Y,2\nA,Z,3\n";
        let doc = parse_csv(
            text.as_bytes(),
            &CsvOptions {
                delimiter: b',',
                group_by: Some("order_ref".into()),
            },
        )
        .unwrap();
        let Some(Node::Array(groups)) = doc.get("groups") else {
            panic!()
        };
        assert_eq!(groups.len(), 2);
        let Some(Node::Array(rows)) = groups[0].get("rows") else {
            panic!()
        };
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].get("#line").and_then(Node::scalar_text), Some("4"));
        assert_eq!(groups[1].get("sku").and_then(Node::scalar_text), Some("Y"));
    }

    #[test]
    fn ragged_rows_are_refused_with_their_line() {
        let e = parse_csv(
            b"a,b\n1,2\n3\n",
            &CsvOptions {
                delimiter: b',',
                group_by: None,
            },
        )
        .unwrap_err();
        assert!(e.0.starts_with("line 3"), "{e}");
    }
}
