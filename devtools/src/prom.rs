//! Checking Prometheus text expositions in tests (the server's and the
//! load generator's `/metrics`), with the framework's own parser.

use std::collections::HashMap;

/// Parses a Prometheus text exposition strictly and returns
/// `name{labels}` → value. Panics, naming the line, on anything wrong.
pub fn parse_exposition(body: &str) -> HashMap<String, f64> {
    let samples = shardloop::metrics::text::parse(body).unwrap_or_else(|e| panic!("{e}"));
    let mut out = HashMap::new();
    for s in samples {
        let series = s.series();
        assert!(
            out.insert(series.clone(), s.value).is_none(),
            "duplicate series {series}"
        );
    }
    out
}
