//! Data files a template takes values from, loaded once and shared
//! read-only by every connection: CSV (RFC 4180: a header row, quoted
//! fields with `""` escapes, commas and line breaks inside quotes) or JSON
//! (an array of objects, whose keys are the columns, or of plain values).

use std::collections::BTreeMap;

/// Rows of values by column.
#[derive(Debug)]
pub(crate) struct Table {
    /// Column names, in order.
    pub(crate) columns: Vec<String>,
    /// Each row's values, one per column.
    pub(crate) rows: Vec<Vec<Vec<u8>>>,
}

/// Rows a data file may have at most (a loaded file is held in memory).
const MAX_ROWS: usize = 10_000_000;

impl Table {
    /// The index of column `name`.
    pub(crate) fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The longest value.
    pub(crate) fn max_len(&self) -> usize {
        self.rows
            .iter()
            .flat_map(|r| r.iter().map(Vec::len))
            .max()
            .unwrap_or(0)
    }

    /// Parses a CSV file's text: the first record names the columns.
    pub(crate) fn csv(text: &[u8]) -> Result<Table, String> {
        let mut records = csv_records(text)?;
        if records.is_empty() {
            return Err("an empty CSV file (it needs a header row)".into());
        }
        let header = records.remove(0);
        let columns: Vec<String> = header
            .into_iter()
            .map(|c| String::from_utf8_lossy(&c).trim().to_string())
            .collect();
        for (i, r) in records.iter().enumerate() {
            if r.len() != columns.len() {
                return Err(format!(
                    "record {} has {} fields, the header {}",
                    i + 2,
                    r.len(),
                    columns.len()
                ));
            }
        }
        Table::checked(columns, records)
    }

    /// Parses a JSON array: of objects (their keys are the columns; a key
    /// a row lacks is empty there) or of plain values (one column, "").
    pub(crate) fn json(text: &[u8]) -> Result<Table, String> {
        let v: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
        let items = v.as_array().ok_or("expected a JSON array")?;
        let text_of = |v: &serde_json::Value| -> Vec<u8> {
            match v {
                serde_json::Value::String(s) => s.clone().into_bytes(),
                serde_json::Value::Null => Vec::new(),
                other => other.to_string().into_bytes(),
            }
        };
        if items.iter().all(|i| !i.is_object()) {
            let rows = items.iter().map(|i| vec![text_of(i)]).collect();
            return Table::checked(vec![String::new()], rows);
        }
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut columns = Vec::new();
        for item in items {
            let obj = item
                .as_object()
                .ok_or("a JSON array of objects and plain values mixed")?;
            for k in obj.keys() {
                if !index.contains_key(k) {
                    index.insert(k.clone(), columns.len());
                    columns.push(k.clone());
                }
            }
        }
        let rows = items
            .iter()
            .map(|item| {
                let obj = item.as_object().expect("checked above");
                columns
                    .iter()
                    .map(|c| obj.get(c).map(text_of).unwrap_or_default())
                    .collect()
            })
            .collect();
        Table::checked(columns, rows)
    }

    fn checked(columns: Vec<String>, rows: Vec<Vec<Vec<u8>>>) -> Result<Table, String> {
        if rows.is_empty() {
            return Err("no rows".into());
        }
        if rows.len() > MAX_ROWS {
            return Err(format!("{} rows: at most {MAX_ROWS}", rows.len()));
        }
        Ok(Table { columns, rows })
    }
}

/// RFC 4180 records (CRLF or LF line ends; a last line without one).
fn csv_records(text: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, String> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = Vec::new();
    let mut i = 0;
    let mut quoted = false;
    let mut at_start = true;
    while i < text.len() {
        let b = text[i];
        if quoted {
            match b {
                b'"' if text.get(i + 1) == Some(&b'"') => {
                    field.push(b'"');
                    i += 1;
                }
                b'"' => quoted = false,
                _ => field.push(b),
            }
        } else {
            match b {
                b'"' if at_start => quoted = true,
                b',' => {
                    record.push(std::mem::take(&mut field));
                    at_start = true;
                    i += 1;
                    continue;
                }
                b'\r' if text.get(i + 1) == Some(&b'\n') => {}
                b'\n' => {
                    record.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut record));
                    at_start = true;
                    i += 1;
                    continue;
                }
                _ => field.push(b),
            }
        }
        at_start = false;
        i += 1;
    }
    if quoted {
        return Err("a quoted field is never closed".into());
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    // Blank lines are no records.
    records.retain(|r| !(r.len() == 1 && r[0].is_empty()));
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 4180 writing: a field with a quote, comma or line break is
    /// quoted, its quotes doubled.
    fn write_csv(records: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            for (i, f) in r.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if f.iter().any(|b| matches!(b, b'"' | b',' | b'\n' | b'\r')) {
                    out.push(b'"');
                    for &b in f {
                        if b == b'"' {
                            out.push(b'"');
                        }
                        out.push(b);
                    }
                    out.push(b'"');
                } else {
                    out.extend_from_slice(f);
                }
            }
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    proptest! {
        /// Whatever the fields hold, written as RFC 4180 they read back
        /// the same (every record with the header's width).
        #[test]
        fn csv_round_trips(
            width in 1usize..5,
            rows in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'"'), Just(b','), Just(b'\n'), Just(b'\r'), Just(b' ')], 0..6),
                    5,
                ),
                1..6,
            ),
        ) {
            let header: Vec<Vec<u8>> = (0..width).map(|i| format!("c{i}").into_bytes()).collect();
            let body: Vec<Vec<Vec<u8>>> = rows.into_iter().map(|r| r[..width].to_vec()).collect();
            // A record of one empty field is a blank line, which CSV cannot tell from none.
            let body: Vec<_> = body.into_iter().filter(|r| !(width == 1 && r[0].is_empty())).collect();
            prop_assume!(!body.is_empty());
            let mut all = vec![header];
            all.extend(body.iter().cloned());
            let t = Table::csv(&write_csv(&all)).unwrap();
            prop_assert_eq!(t.rows, body);
        }

        /// Any bytes at all: an answer or an error, never a panic.
        #[test]
        fn csv_never_panics(text in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Table::csv(&text);
            let _ = Table::json(&text);
        }
    }

    #[test]
    fn csv_with_quotes_commas_and_line_breaks() {
        let t = Table::csv(b"id,email,note\r\n1,a@x.io,plain\n2,\"b@x.io\",\"says \"\"hi\"\", then\nleaves\"\n\n3,c@x.io,").unwrap();
        assert_eq!(t.columns, ["id", "email", "note"]);
        assert_eq!(t.rows.len(), 3);
        assert_eq!(t.rows[1][2], b"says \"hi\", then\nleaves");
        assert_eq!(t.rows[2][2], b"");
        assert!(Table::csv(b"a,b\n1\n").unwrap_err().contains("record 2"));
        assert!(Table::csv(b"a\n\"open").is_err());
        assert!(Table::csv(b"").is_err());
    }

    #[test]
    fn json_objects_or_values() {
        let t = Table::json(br#"[{"sku": "a1", "qty": 2}, {"sku": "b2", "gift": true}]"#).unwrap();
        let col = |c: &str| t.column(c).unwrap();
        assert_eq!(t.columns.len(), 3);
        assert_eq!(t.rows[0][col("sku")], b"a1");
        assert_eq!(t.rows[0][col("qty")], b"2");
        assert_eq!(t.rows[0][col("gift")], b"", "a key the row lacks is empty");
        assert_eq!(t.rows[1][col("gift")], b"true");
        let v = Table::json(br#"["x", 7]"#).unwrap();
        assert_eq!((v.columns.len(), v.rows[1][0].as_slice()), (1, &b"7"[..]));
        assert!(Table::json(b"{}").is_err());
        assert!(Table::json(b"[]").is_err());
    }
}
