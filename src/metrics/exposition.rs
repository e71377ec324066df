//! The Prometheus text exposition format, version 0.0.4: per metric family
//! one `# HELP` and one `# TYPE` line, then its samples
//! `name{label="value",...} number`, one per line. Label values escape
//! backslash, double quote and newline; HELP text escapes backslash and
//! newline.

use std::fmt::Write as _;

/// The `Content-Type` a scraper expects for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A page being written. Families must not repeat: callers write each
/// family's header once, followed by all of its samples.
#[derive(Default)]
pub struct Page {
    out: String,
}

impl Page {
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = write!(self.out, "# HELP {name} ");
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        let _ = writeln!(self.out, "\n# TYPE {name} {}", kind.as_str());
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<f64>) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label(&mut self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        push_number(&mut self.out, value.into());
        self.out.push('\n');
    }

    /// A histogram's samples: cumulative `_bucket{le=...}` per upper bound
    /// (then `+Inf`), `_sum` and `_count`. `counts[i]` is the number of
    /// observations in (bounds[i-1], bounds[i]]; `counts[bounds.len()]` the
    /// ones above the last bound.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) {
        debug_assert_eq!(counts.len(), bounds.len() + 1);
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (i, count) in counts.iter().enumerate() {
            cumulative += count;
            let mut le_text = String::new();
            match bounds.get(i) {
                Some(b) => push_number(&mut le_text, *b),
                None => le_text.push_str("+Inf"),
            }
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le_text));
            // u64 counts beyond 2^53 lose precision as f64; Prometheus
            // stores floats anyway.
            self.sample(&bucket, &with_le, cumulative as f64);
        }
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, cumulative as f64);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Integers print without a fraction; the special values as Prometheus
/// spells them.
fn push_number(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_and_samples_follow_the_text_format() {
        let mut p = Page::default();
        p.family("x_total", Kind::Counter, "Bytes in.\nSecond \\ line");
        p.sample("x_total", &[], 3u32);
        p.sample(
            "x_total",
            &[("topic", "a\"b\\c\nd"), ("partition", "0")],
            1.5,
        );
        assert_eq!(
            p.finish(),
            "# HELP x_total Bytes in.\\nSecond \\\\ line\n\
             # TYPE x_total counter\n\
             x_total 3\n\
             x_total{topic=\"a\\\"b\\\\c\\nd\",partition=\"0\"} 1.5\n"
        );
    }

    #[test]
    fn numbers_print_as_prometheus_parses_them() {
        let mut s = String::new();
        for v in [
            0.0,
            -7.0,
            2.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            1e20,
        ] {
            push_number(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "0 -7 2.5 +Inf -Inf NaN 100000000000000000000 ");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_inf() {
        let mut p = Page::default();
        p.family("t", Kind::Histogram, "h");
        p.histogram("t", &[("request", "Fetch")], &[1.0, 2.5], &[2, 0, 3], 9.5);
        let text = p.finish();
        let lines: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "t_bucket{request=\"Fetch\",le=\"1\"} 2",
                "t_bucket{request=\"Fetch\",le=\"2.5\"} 2",
                "t_bucket{request=\"Fetch\",le=\"+Inf\"} 5",
                "t_sum{request=\"Fetch\"} 9.5",
                "t_count{request=\"Fetch\"} 5",
            ]
        );
    }
}
