//! The two exposition formats. `prometheus-client` writes OpenMetrics; Prometheus' own text
//! format (0.0.4), which most scrapers and `promtool check metrics` expect, differs in three
//! ways this rewrites: a counter family is named with its `_total` suffix in `# HELP` and
//! `# TYPE`, an `info` family is a `gauge` named with `_info`, and there are no `# UNIT` or
//! `# EOF` lines.

/// The content type of Prometheus' text format.
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of OpenMetrics.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics: it names it with a quality above 0 and
/// at least that of every text/plain range it names (Prometheus asks for OpenMetrics first,
/// with text as a fallback).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let (mut open, mut text) = (0.0f32, 0.0f32);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/openmetrics-text" => open = open.max(q),
            "text/plain" => text = text.max(q),
            _ => {}
        }
    }
    open > 0.0 && open >= text
}

/// Rewrites OpenMetrics text into Prometheus' text format.
pub fn to_text_format(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // `# HELP` comes before `# TYPE`: hold it until the type says how to name the family.
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "gaugehistogram" | "stateset" | "unknown" => (name.to_string(), "untyped"),
                k => (name.to_string(), k),
            };
            if let Some((_, text)) = help.take() {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        if let Some((name, text)) = help.take() {
            // A family without a type line: keep its help as it was.
            out.push_str(&format!("# HELP {name} {text}\n"));
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_infos_units_and_eof_become_text_format() {
        let om = "# HELP cairn_blocks Blocks committed.\n\
                  # TYPE cairn_blocks counter\n\
                  cairn_blocks_total 3\n\
                  # HELP cairn_build Build.\n\
                  # TYPE cairn_build info\n\
                  cairn_build_info{version=\"0.1.0\"} 1\n\
                  # HELP cairn_block_interval_seconds Time.\n\
                  # TYPE cairn_block_interval_seconds histogram\n\
                  # UNIT cairn_block_interval_seconds seconds\n\
                  cairn_block_interval_seconds_sum 1.5\n\
                  # HELP cairn_height Height.\n\
                  # TYPE cairn_height gauge\n\
                  cairn_height 7\n\
                  # EOF\n";
        let text = to_text_format(om);
        assert_eq!(
            text,
            "# HELP cairn_blocks_total Blocks committed.\n\
             # TYPE cairn_blocks_total counter\n\
             cairn_blocks_total 3\n\
             # HELP cairn_build_info Build.\n\
             # TYPE cairn_build_info gauge\n\
             cairn_build_info{version=\"0.1.0\"} 1\n\
             # HELP cairn_block_interval_seconds Time.\n\
             # TYPE cairn_block_interval_seconds histogram\n\
             cairn_block_interval_seconds_sum 1.5\n\
             # HELP cairn_height Height.\n\
             # TYPE cairn_height gauge\n\
             cairn_height 7\n"
        );
    }

    #[test]
    fn openmetrics_is_served_only_when_asked_for() {
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some(
            "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
        )));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
        assert!(!wants_openmetrics(Some(
            "application/openmetrics-text;q=0.2,text/plain;q=0.9"
        )));
    }
}
