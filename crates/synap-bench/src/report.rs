//! Results: HDR latency histograms, throughput, errors; text, JSON and markdown output.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency histogram in microseconds, 1 µs to 60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub target: String,
    pub addr: String,
    pub operations: u64,
    pub errors: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Requested rate (coordinated-omission-corrected latencies) or none (closed loop).
    pub rate: Option<u64>,
}

impl Report {
    pub fn new(
        scenario: &str,
        target: &str,
        addr: &str,
        h: &Histogram<u64>,
        errors: u64,
        seconds: f64,
        rate: Option<u64>,
    ) -> Report {
        let ms = |us: u64| us as f64 / 1000.0;
        let ops = h.len();
        Report {
            scenario: scenario.into(),
            target: target.into(),
            addr: addr.into(),
            operations: ops,
            errors,
            seconds,
            ops_per_sec: if seconds > 0.0 { ops as f64 / seconds } else { 0.0 },
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            rate,
        }
    }

    pub fn text(&self) -> String {
        format!(
            "{} {} ({}): {} ops in {:.2} s = {:.0} ops/s, {} errors\n  latency ms: mean {:.3} p50 {:.3} p95 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}{}",
            self.scenario,
            self.target,
            self.addr,
            self.operations,
            self.seconds,
            self.ops_per_sec,
            self.errors,
            self.mean_ms,
            self.p50_ms,
            self.p95_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
            match self.rate {
                Some(r) => format!("\n  fixed rate {r} ops/s; latency counted from each request's scheduled time"),
                None => String::new(),
            }
        )
    }
}

pub fn markdown(reports: &[Report]) -> String {
    let mut s = String::from(
        "| scenario | target | ops | errors | seconds | ops/s | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            r.scenario,
            r.target,
            r.operations,
            r.errors,
            r.seconds,
            r.ops_per_sec,
            r.p50_ms,
            r.p95_ms,
            r.p99_ms,
            r.p999_ms,
            r.max_ms
        ));
    }
    s
}

/// Ratios of the first target to the second (throughput, and latency where lower is better).
pub fn ratios(a: &Report, b: &Report) -> String {
    let r = |x: f64, y: f64| if y > 0.0 { format!("{:.2}", x / y) } else { "n/a".into() };
    format!(
        "{} {} / {}: throughput {}x, p95 latency {}x, p99 latency {}x",
        a.scenario,
        a.target,
        b.target,
        r(a.ops_per_sec, b.ops_per_sec),
        r(a.p95_ms, b.p95_ms),
        r(a.p99_ms, b.p99_ms)
    )
}
