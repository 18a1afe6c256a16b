//! The ECB's history as most finance tools download it: `eurofxref-hist.csv` (one row per
//! day, newest first, a column per currency, `N/A` where a currency was not quoted, a trailing
//! comma on every line) and the `eurofxref-hist.zip` that holds it. Pure: bytes in, days out.

use std::collections::BTreeMap;
use std::io::Read;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::FxError;
use super::rates::RateDay;

fn bad(m: String) -> FxError {
    FxError::Document(format!("ECB rates: {m}"))
}

/// True for the bytes of a zip archive.
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// The one `.csv` member of an ECB zip.
pub fn unzip_csv(bytes: &[u8]) -> Result<Vec<u8>, FxError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(format!("not a readable zip archive: {e}")))?;
    let names: Vec<String> = archive
        .file_names()
        .filter(|n| n.to_ascii_lowercase().ends_with(".csv"))
        .map(str::to_string)
        .collect();
    let [name] = names.as_slice() else {
        return Err(bad(format!(
            "the zip archive must hold exactly one .csv file; it holds {}",
            names.len()
        )));
    };
    let mut file = archive
        .by_name(name)
        .map_err(|e| bad(format!("{name} in the zip archive: {e}")))?;
    // The full history is about 2 MB; refuse anything absurdly larger (a zip bomb).
    const LIMIT: u64 = 256 * 1024 * 1024;
    let mut out = Vec::new();
    (&mut file)
        .take(LIMIT + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad(format!("{name} in the zip archive: {e}")))?;
    if out.len() as u64 > LIMIT {
        return Err(bad(format!("{name} unpacks to more than 256 MiB")));
    }
    Ok(out)
}

/// Parses the CSV: days oldest first. A bad date, a day twice, a rate that is neither a
/// positive decimal nor `N/A`, or a currency header that is not a 3-letter code is an error
/// naming its line and column.
pub fn parse_csv(bytes: &[u8]) -> Result<Vec<RateDay>, FxError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| bad(format!("the header row: {e}")))?
        .clone();
    if headers.get(0) != Some("Date") {
        return Err(bad("the first column must be Date".into()));
    }
    let currencies: Vec<&str> = headers.iter().skip(1).collect();
    for (i, c) in currencies.iter().enumerate() {
        let trailing = c.is_empty() && i + 1 == currencies.len();
        if !trailing && (c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(bad(format!(
                "column {} of the header is not a 3-letter currency code",
                i + 2
            )));
        }
    }
    let mut out: BTreeMap<NaiveDate, RateDay> = BTreeMap::new();
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.map_err(|e| bad(format!("line {line}: {e}")))?;
        let text = record.get(0).unwrap_or_default();
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| bad(format!("line {line}: the date is not YYYY-MM-DD")))?;
        let mut rates = BTreeMap::new();
        for (value, cur) in record.iter().skip(1).zip(&currencies) {
            if cur.is_empty() || value.is_empty() || value == "N/A" {
                continue;
            }
            let rate = crate::model::money::parse_decimal(value)
                .ok()
                .filter(|r| *r > Decimal::ZERO)
                .ok_or_else(|| {
                    bad(format!(
                        "line {line} ({date}), {cur}: the rate is not a positive decimal"
                    ))
                })?;
            rates.insert((*cur).to_string(), rate);
        }
        if out.insert(date, RateDay { date, rates }).is_some() {
            return Err(bad(format!("line {line}: {date} appears twice")));
        }
    }
    if out.is_empty() {
        return Err(bad("no rate days".into()));
    }
    Ok(out.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Date,USD,JPY,CYP,GBP,\n2017-03-03,1.0585,120.65,N/A,0.86263,\n2017-03-02,1.0516,120.34,N/A,0.85825,\n";

    #[test]
    fn reads_the_ecb_csv_layout() {
        let days = parse_csv(SAMPLE.as_bytes()).unwrap();
        assert_eq!(days.len(), 2);
        assert_eq!(days[0].date.to_string(), "2017-03-02", "oldest first");
        assert_eq!(days[1].rates["USD"].to_string(), "1.0585");
        assert_eq!(days[1].rates["GBP"].to_string(), "0.86263");
        assert!(!days[1].rates.contains_key("CYP"), "N/A is not a rate");
        assert_eq!(days[1].rates.len(), 3);
    }

    #[test]
    fn names_the_line_of_a_bad_rate_or_date() {
        let e = parse_csv(b"Date,USD,\n2017-03-03,1.0585,\n2017-03-02,-1,\n").unwrap_err();
        assert!(e.to_string().contains("line 3 (2017-03-02), USD"), "{e}");
        let e = parse_csv(b"Date,USD,\n03/03/2017,1.0585,\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = parse_csv(b"Date,USD,\n2017-03-03,1,\n2017-03-03,1,\n").unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
        let e = parse_csv(b"Date,usd,\n2017-03-03,1,\n").unwrap_err();
        assert!(e.to_string().contains("column 2"), "{e}");
    }

    #[test]
    fn a_zip_must_hold_one_csv() {
        use std::io::Write;
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            z.start_file(
                "eurofxref-hist.csv",
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            z.write_all(SAMPLE.as_bytes()).unwrap();
            z.finish().unwrap();
        }
        let bytes = buf.into_inner();
        assert!(is_zip(&bytes));
        assert_eq!(unzip_csv(&bytes).unwrap(), SAMPLE.as_bytes());
        assert!(unzip_csv(b"PK\x03\x04 not really").is_err());
    }
}
