//! `/metrics`: Prometheus text format, written by hand (a handful of series need no library).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The server's counters. Labels come from fixed sets (verbs, status codes), so the number of series
/// stays bounded whatever clients send.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    watches: AtomicI64,
}

impl Metrics {
    /// Records one finished request (for a watch: when its response started).
    pub fn record(&self, verb: &'static str, code: u16, elapsed: Duration) {
        *self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((verb, code))
            .or_default() += 1;
        let secs = elapsed.as_secs_f64();
        let mut latency = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        let h = latency.entry(verb).or_default();
        h.count += 1;
        h.sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
    }

    pub fn watch_opened(&self) {
        self.watches.fetch_add(1, Ordering::Relaxed);
    }

    pub fn watch_closed(&self) {
        self.watches.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn watches_open(&self) -> i64 {
        self.watches.load(Ordering::Relaxed)
    }

    /// The exposition text. `revision` is the store's current revision, None when it did not answer.
    pub fn render(&self, revision: Option<u64>) -> String {
        let mut out = String::new();
        out.push_str("# HELP meshctl_http_requests_total API requests by verb and HTTP status code.\n");
        out.push_str("# TYPE meshctl_http_requests_total counter\n");
        for ((verb, code), n) in self.requests.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = writeln!(
                out,
                "meshctl_http_requests_total{{verb=\"{verb}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP meshctl_http_request_duration_seconds Time to answer a request (for a watch: to start the stream).\n",
        );
        out.push_str("# TYPE meshctl_http_request_duration_seconds histogram\n");
        for (verb, h) in self.latency.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "meshctl_http_request_duration_seconds_bucket{{verb=\"{verb}\",le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "meshctl_http_request_duration_seconds_bucket{{verb=\"{verb}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "meshctl_http_request_duration_seconds_sum{{verb=\"{verb}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "meshctl_http_request_duration_seconds_count{{verb=\"{verb}\"}} {}",
                h.count
            );
        }
        out.push_str("# HELP meshctl_store_up Whether the store answered this scrape (1) or not (0).\n");
        out.push_str("# TYPE meshctl_store_up gauge\n");
        let _ = writeln!(out, "meshctl_store_up {}", u8::from(revision.is_some()));
        if let Some(rev) = revision {
            out.push_str("# HELP meshctl_store_revision The store's current revision.\n");
            out.push_str("# TYPE meshctl_store_revision gauge\n");
            let _ = writeln!(out, "meshctl_store_revision {rev}");
        }
        out.push_str("# HELP meshctl_watches_open Watch streams open now.\n");
        out.push_str("# TYPE meshctl_watches_open gauge\n");
        let _ = writeln!(out, "meshctl_watches_open {}", self.watches_open());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.record("get", 200, Duration::from_millis(3));
        m.record("get", 404, Duration::from_secs(20));
        let text = m.render(Some(7));
        assert!(text.contains("meshctl_http_requests_total{verb=\"get\",code=\"200\"} 1\n"));
        assert!(text.contains("meshctl_http_request_duration_seconds_bucket{verb=\"get\",le=\"0.005\"} 1\n"));
        assert!(text.contains("meshctl_http_request_duration_seconds_bucket{verb=\"get\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("meshctl_store_revision 7\n"));
        assert!(text.contains("meshctl_watches_open 0\n"));
    }
}
