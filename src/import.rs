//! File imports (phone / call-centre orders): a CSV file split into chunks of whole orders, each
//! stored as one delivery through the same pipeline as a webhook, with every problem reported
//! by line and column of the original file.
//!
//! - A row whose column count is wrong is reported and its whole order left out.
//! - A chunk is a valid CSV file on its own (header + the rows of its orders), so a dead-lettered
//!   chunk can be replayed like any delivery.
//! - Each chunk's idempotency key is the hash of its bytes: importing the same file twice stores
//!   nothing new.
//! - Orders with a problem are reported and not sent: the stored chunk holds only good orders,
//!   so after fixing the file, a re-import stores just the fixed orders.

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::adapter::{Adapter, FieldError};

/// Orders per chunk (per stored delivery).
pub const CHUNK_ORDERS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("adapter '{0}' does not read CSV files (format is not \"csv\")")]
    NotCsv(String),
    #[error("adapter '{0}' has no csv.group_by column to group rows into orders")]
    NoGroupColumn(String),
    #[error("line 1: the header row cannot be read: {0}")]
    Header(String),
    #[error("line 1: the header row has no '{0}' column")]
    MissingGroupColumn(String),
}

/// A problem with one row (or the order it belongs to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub line: u64,
    /// The CSV column, when the problem is with one value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The order the row belongs to (left out as a whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The value found in that cell (shown to the operator who owns the file; never logged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub problem: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(c) = &self.column {
            write!(f, ", column {c}")?;
        }
        if let Some(o) = &self.order_id {
            write!(f, " (order {o})")?;
        }
        write!(f, ": {}", self.problem)?;
        if let Some(v) = &self.value {
            write!(f, " (found {v:?})")?;
        }
        Ok(())
    }
}

/// One order's rows in a chunk: its id and the file line of each row, in order.
#[derive(Debug, Clone)]
pub struct ChunkOrder {
    pub order_id: String,
    pub lines: Vec<u64>,
}

/// Whole orders, as one CSV document.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub body: Vec<u8>,
    pub orders: Vec<ChunkOrder>,
    /// Idempotency key: `import:` + SHA-256 of the body.
    pub key: String,
    delimiter: u8,
    headers: csv::StringRecord,
    rows: Vec<Vec<csv::StringRecord>>,
}

impl Chunk {
    fn build(
        delimiter: u8,
        headers: csv::StringRecord,
        orders: Vec<ChunkOrder>,
        rows: Vec<Vec<csv::StringRecord>>,
    ) -> Chunk {
        let mut w = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .from_writer(Vec::new());
        w.write_record(&headers).expect("writing to memory");
        for r in rows.iter().flatten() {
            w.write_record(r).expect("writing to memory");
        }
        let body = w.into_inner().expect("writing to memory");
        let key = format!("import:{}", hex::encode(Sha256::digest(&body)));
        Chunk {
            body,
            orders,
            key,
            delimiter,
            headers,
            rows,
        }
    }

    /// Where an adapter field error about the chunk's `i`-th order is in the file.
    pub fn locate(&self, i: usize, e: &FieldError) -> RowError {
        let mut r = locate(&self.orders[i], e);
        let row = self.orders[i]
            .lines
            .iter()
            .position(|l| *l == r.line)
            .and_then(|k| self.rows[i].get(k));
        let col = r
            .column
            .as_ref()
            .and_then(|c| self.headers.iter().position(|h| h.trim() == c));
        if let (Some(row), Some(col)) = (row, col) {
            r.value = row.get(col).map(str::to_string);
        }
        r
    }

    /// The same chunk without some of its orders (by index); `None` when none is left.
    pub fn without(&self, drop: &[usize]) -> Option<Chunk> {
        let keep: Vec<usize> = (0..self.orders.len())
            .filter(|i| !drop.contains(i))
            .collect();
        if keep.is_empty() {
            return None;
        }
        Some(Chunk::build(
            self.delimiter,
            self.headers.clone(),
            keep.iter().map(|&i| self.orders[i].clone()).collect(),
            keep.iter().map(|&i| self.rows[i].clone()).collect(),
        ))
    }
}

/// What a file turned into before anything is stored.
#[derive(Debug, Clone)]
pub struct Plan {
    pub chunks: Vec<Chunk>,
    /// Rows refused while reading the file (wrong column count).
    pub row_errors: Vec<RowError>,
    /// Orders in the file, including refused ones.
    pub orders: usize,
}

/// Reads a CSV file for an adapter and splits it into chunks of at most `per_chunk` orders.
pub fn plan(adapter: &Adapter, bytes: &[u8], per_chunk: usize) -> Result<Plan, ImportError> {
    let spec = adapter.spec();
    if spec.format != crate::adapter::spec::Format::Csv {
        return Err(ImportError::NotCsv(spec.name.clone()));
    }
    let opts = adapter.csv_options();
    let group = opts
        .group_by
        .clone()
        .ok_or_else(|| ImportError::NoGroupColumn(spec.name.clone()))?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(opts.delimiter)
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| ImportError::Header(e.to_string()))?
        .clone();
    let group_col = headers
        .iter()
        .position(|h| h.trim() == group)
        .ok_or_else(|| ImportError::MissingGroupColumn(group.clone()))?;

    let mut row_errors = Vec::new();
    let mut order_of_first: Vec<String> = Vec::new();
    let mut rows: HashMap<String, Vec<(u64, csv::StringRecord)>> = HashMap::new();
    let mut refused: HashMap<String, ()> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                row_errors.push(RowError {
                    line,
                    column: None,
                    order_id: None,
                    value: None,
                    problem: format!("unreadable row: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let key = record.get(group_col).unwrap_or("").trim().to_string();
        if key.is_empty() {
            row_errors.push(RowError {
                line,
                column: Some(group.clone()),
                order_id: None,
                value: None,
                problem: "is empty; every row names its order".into(),
            });
            continue;
        }
        if !rows.contains_key(&key) {
            order_of_first.push(key.clone());
        }
        if record.len() != headers.len() {
            row_errors.push(RowError {
                line,
                column: None,
                order_id: Some(key.clone()),
                value: None,
                problem: format!(
                    "has {} columns, the header has {}",
                    record.len(),
                    headers.len()
                ),
            });
            refused.insert(key.clone(), ());
        }
        rows.entry(key).or_default().push((line, record));
    }

    let orders = order_of_first.len();
    let kept: Vec<String> = order_of_first
        .into_iter()
        .filter(|k| !refused.contains_key(k))
        .collect();
    let mut chunks = Vec::new();
    for ids in kept.chunks(per_chunk.max(1)) {
        let mut chunk_orders = Vec::with_capacity(ids.len());
        let mut chunk_rows = Vec::with_capacity(ids.len());
        for id in ids {
            let order_rows = rows.remove(id).unwrap_or_default();
            chunk_orders.push(ChunkOrder {
                order_id: id.clone(),
                lines: order_rows.iter().map(|(l, _)| *l).collect(),
            });
            chunk_rows.push(order_rows.into_iter().map(|(_, r)| r).collect());
        }
        chunks.push(Chunk::build(
            opts.delimiter,
            headers.clone(),
            chunk_orders,
            chunk_rows,
        ));
    }
    Ok(Plan {
        chunks,
        row_errors,
        orders,
    })
}

/// The file line and CSV column of an adapter field error about one order of a chunk.
pub fn locate(order: &ChunkOrder, e: &FieldError) -> RowError {
    // `lines[i].…` is the order's i-th row; anything else is read from its first row.
    let line = e
        .field
        .strip_prefix("lines[")
        .and_then(|r| r.split_once(']'))
        .and_then(|(i, _)| i.parse::<usize>().ok())
        .and_then(|i| order.lines.get(i))
        .or(order.lines.first())
        .copied()
        .unwrap_or(0);
    let column = e.source.as_deref().map(|s| {
        s.trim_start_matches("^.")
            .trim_start_matches("$.")
            .to_string()
    });
    RowError {
        line,
        column,
        order_id: Some(order.order_id.clone()),
        value: None,
        problem: format!("{}: {}", e.field, e.problem),
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// Orders in the file.
    pub orders: usize,
    /// Orders stored as new or changed.
    pub stored: usize,
    /// Orders already stored with the same content (a re-import).
    pub unchanged: usize,
    /// Orders left out because of an error.
    pub failed: usize,
    pub errors: Vec<RowError>,
}

impl ImportReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::spec::AdapterSpec;

    fn phone() -> Adapter {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters/phone.toml"),
        )
        .unwrap();
        let spec: AdapterSpec = toml::from_str(&text).unwrap();
        Adapter::new(spec)
    }

    #[test]
    fn chunks_hold_whole_orders_and_keep_file_lines() {
        let csv = "order_id,title\nA,x\nB,y\nA,z\nC,w\n";
        let p = plan(&phone(), csv.as_bytes(), 2).unwrap();
        assert_eq!(p.orders, 3);
        assert_eq!(p.chunks.len(), 2);
        assert_eq!(p.chunks[0].orders[0].order_id, "A");
        assert_eq!(p.chunks[0].orders[0].lines, [2, 4]);
        let body = String::from_utf8(p.chunks[0].body.clone()).unwrap();
        assert_eq!(body, "order_id,title\nA,x\nA,z\nB,y\n");
        // The same content gives the same key (re-import is a duplicate).
        let again = plan(&phone(), csv.as_bytes(), 2).unwrap();
        assert_eq!(again.chunks[1].key, p.chunks[1].key);
    }

    #[test]
    fn ragged_rows_refuse_their_order_only() {
        let csv = "order_id,title\nA,x\nB\nB,y\n,z\n";
        let p = plan(&phone(), csv.as_bytes(), 10).unwrap();
        assert_eq!(p.orders, 2);
        assert_eq!(p.chunks[0].orders.len(), 1);
        let lines: Vec<u64> = p.row_errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 5]);
        assert_eq!(p.row_errors[0].order_id.as_deref(), Some("B"));
        assert_eq!(p.row_errors[1].column.as_deref(), Some("order_id"));
    }

    #[test]
    fn field_errors_point_at_line_and_column() {
        let order = ChunkOrder {
            order_id: "P-1".into(),
            lines: vec![7, 9],
        };
        let e = locate(
            &order,
            &FieldError {
                field: "lines[1].quantity".into(),
                source: Some("quantity".into()),
                problem: "must be a whole number".into(),
            },
        );
        assert_eq!((e.line, e.column.as_deref()), (9, Some("quantity")));
        let e = locate(
            &order,
            &FieldError {
                field: "currency".into(),
                source: Some("currency".into()),
                problem: "is required but missing".into(),
            },
        );
        assert_eq!(e.line, 7);
        assert_eq!(
            e.to_string(),
            "line 7, column currency (order P-1): currency: is required but missing"
        );
    }
}
