//! Metrics: counters the serving paths bump with relaxed atomics, rendered in the Prometheus text
//! format on demand.
//!
//! Every series is pre-registered with bounded labels: protocols, a fixed list of query types,
//! response codes, latency buckets, and (service, region, reason) triples that exist in the
//! config. Counting never allocates or locks; only registering a service's counters at load and
//! rendering take a lock, and neither is on the query path.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::dns::Transport;

/// Query types counted by name; everything else is `other`.
const QTYPES: [(u16, &str); 14] = [
    (1, "A"),
    (2, "NS"),
    (5, "CNAME"),
    (6, "SOA"),
    (12, "PTR"),
    (15, "MX"),
    (16, "TXT"),
    (28, "AAAA"),
    (33, "SRV"),
    (43, "DS"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (255, "ANY"),
    (257, "CAA"),
];

/// Buckets of the query type counters: the named types, then `other`.
const QTYPE_BUCKETS: usize = QTYPES.len() + 1;

/// Response codes counted by name; everything else is `other`.
const RCODES: [&str; 6] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
];

/// Buckets of the response code counters.
const RCODE_BUCKETS: usize = RCODES.len() + 1;

/// Upper bounds of the latency histogram, in microseconds: the per-query path takes well under
/// a microsecond, so the low buckets show the serving loop and the high ones show stalls.
const LATENCY_BOUNDS_US: [u64; 10] = [5, 10, 25, 50, 100, 250, 500, 1000, 5000, 25_000];

/// GSLB answer reasons, as `policy::Reason::label` gives them.
pub const REASONS: [&str; 10] = [
    "preferred",
    "failed_over",
    "spilled",
    "weighted",
    "standby",
    "all_down_serve_all",
    "all_down_fallback",
    "all_down_nodata",
    "all_down_servfail",
    "no_records",
];

/// The region label of answers that name no region (fallback, NODATA, SERVFAIL).
pub const NO_REGION: &str = "none";

/// Answer counts of one (service, region) pair, one per reason.
#[derive(Debug, Default)]
pub struct AnswerCounters {
    /// By index into [`REASONS`].
    counts: [AtomicU64; REASONS.len()],
}

impl AnswerCounters {
    /// Counts one answer for reason `index` (see [`REASONS`]).
    pub fn count(&self, reason: usize) {
        if let Some(counter) = self.counts.get(reason) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Answers so far, over every reason.
    pub fn total(&self) -> u64 {
        self.counts
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .sum()
    }
}

/// A latency histogram: counts per bucket (cumulated when rendered), a sum and a count.
#[derive(Debug, Default)]
struct Histogram {
    /// Observations at or below each bound; the last bucket is +Inf.
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    /// Sum of observations, in nanoseconds.
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    fn observe(&self, elapsed: Duration) {
        let micros = elapsed.as_micros() as u64;
        let bucket = LATENCY_BOUNDS_US
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// The process's counters. One per server; it outlives reloads.
#[derive(Debug, Default)]
pub struct Telemetry {
    /// Requests by transport (UDP, TCP) and query type bucket.
    requests: [[AtomicU64; QTYPE_BUCKETS]; 2],
    /// Responses by response code bucket.
    responses: [AtomicU64; RCODE_BUCKETS],
    /// Time from receiving a query to its reply being ready, by transport.
    latency: [Histogram; 2],
    /// Answer counters by (service, region), registered at load and kept across reloads.
    answers: Mutex<BTreeMap<(String, String), Arc<AnswerCounters>>>,
    /// Reloads that failed.
    reload_failures: AtomicU64,
    /// Monitor and region state changes.
    health_transitions: AtomicU64,
}

/// The index of a transport in the per-transport arrays.
fn transport_index(transport: Transport) -> usize {
    match transport {
        Transport::Udp => 0,
        Transport::Tcp => 1,
    }
}

/// The label of a transport.
const TRANSPORTS: [&str; 2] = ["udp", "tcp"];

impl Telemetry {
    /// Counts one query answered over `transport`: its type, response code and the time it took.
    pub fn record(&self, transport: Transport, qtype: u16, rcode: u8, elapsed: Duration) {
        let t = transport_index(transport);
        let bucket = QTYPES
            .iter()
            .position(|&(code, _)| code == qtype)
            .unwrap_or(QTYPES.len());
        self.requests[t][bucket].fetch_add(1, Ordering::Relaxed);
        let rcode = usize::from(rcode).min(RCODES.len());
        self.responses[rcode].fetch_add(1, Ordering::Relaxed);
        self.latency[t].observe(elapsed);
    }

    /// The answer counters of `service` answering from `region` ([`NO_REGION`] for answers
    /// without one), registered on first use and the same ones after every reload.
    pub fn answers(&self, service: &str, region: &str) -> Arc<AnswerCounters> {
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            answers
                .entry((service.to_string(), region.to_string()))
                .or_default(),
        )
    }

    /// Counts a failed reload.
    pub fn reload_failed(&self) {
        self.reload_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a health state change (of a monitor target or a region).
    pub fn health_transition(&self) {
        self.health_transitions.fetch_add(1, Ordering::Relaxed);
    }

    /// Failed reloads so far.
    pub fn reload_failures(&self) -> u64 {
        self.reload_failures.load(Ordering::Relaxed)
    }

    /// Renders the DNS series in the Prometheus text format into `out`, with the answer series
    /// of the (service, region) pairs in `current` only.
    pub fn render(&self, current: &[(String, String)], out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP meridian_dns_requests_total DNS queries received, by transport and query type."
        );
        let _ = writeln!(out, "# TYPE meridian_dns_requests_total counter");
        for (t, proto) in TRANSPORTS.iter().enumerate() {
            for (bucket, counter) in self.requests[t].iter().enumerate() {
                let qtype = QTYPES.get(bucket).map_or("other", |&(_, name)| name);
                let _ = writeln!(
                    out,
                    "meridian_dns_requests_total{{proto=\"{proto}\",type=\"{qtype}\"}} {}",
                    counter.load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP meridian_dns_responses_total DNS responses sent, by response code."
        );
        let _ = writeln!(out, "# TYPE meridian_dns_responses_total counter");
        for (index, counter) in self.responses.iter().enumerate() {
            let rcode = RCODES.get(index).copied().unwrap_or("other");
            let _ = writeln!(
                out,
                "meridian_dns_responses_total{{rcode=\"{rcode}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP meridian_dns_request_duration_seconds Time from receiving a query to its reply being ready."
        );
        let _ = writeln!(
            out,
            "# TYPE meridian_dns_request_duration_seconds histogram"
        );
        for (t, proto) in TRANSPORTS.iter().enumerate() {
            let histogram = &self.latency[t];
            let mut cumulative = 0;
            for (index, counter) in histogram.buckets.iter().enumerate() {
                cumulative += counter.load(Ordering::Relaxed);
                let le = LATENCY_BOUNDS_US
                    .get(index)
                    .map_or_else(|| "+Inf".to_string(), |us| format!("{}", *us as f64 / 1e6));
                let _ = writeln!(
                    out,
                    "meridian_dns_request_duration_seconds_bucket{{proto=\"{proto}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "meridian_dns_request_duration_seconds_sum{{proto=\"{proto}\"}} {}",
                histogram.sum_ns.load(Ordering::Relaxed) as f64 / 1e9
            );
            let _ = writeln!(
                out,
                "meridian_dns_request_duration_seconds_count{{proto=\"{proto}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP meridian_gslb_answers_total GSLB answers, by service, answering region and reason."
        );
        let _ = writeln!(out, "# TYPE meridian_gslb_answers_total counter");
        let answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        for key in current {
            let Some(counters) = answers.get(key) else {
                continue;
            };
            for (index, reason) in REASONS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "meridian_gslb_answers_total{{service=\"{}\",region=\"{}\",reason=\"{reason}\"}} {}",
                    escape(&key.0),
                    escape(&key.1),
                    counters.counts[index].load(Ordering::Relaxed)
                );
            }
        }
        drop(answers);
        let _ = writeln!(
            out,
            "# HELP meridian_reload_failures_total Reloads that failed and changed nothing."
        );
        let _ = writeln!(out, "# TYPE meridian_reload_failures_total counter");
        let _ = writeln!(
            out,
            "meridian_reload_failures_total {}",
            self.reload_failures()
        );
        let _ = writeln!(
            out,
            "# HELP meridian_health_transitions_total Monitor target and region state changes."
        );
        let _ = writeln!(out, "# TYPE meridian_health_transitions_total counter");
        let _ = writeln!(
            out,
            "meridian_health_transitions_total {}",
            self.health_transitions.load(Ordering::Relaxed)
        );
    }
}

/// Escapes a label value (backslash, quote, newline) for the text format.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The index of a reason label in [`REASONS`].
pub fn reason_index(label: &str) -> usize {
    REASONS
        .iter()
        .position(|&known| known == label)
        .unwrap_or(REASONS.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series line starting with `series`.
    fn value(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(str::to_string)
    }

    #[test]
    fn counts_render_with_bounded_labels() {
        let telemetry = Telemetry::default();
        telemetry.record(Transport::Udp, 1, 0, Duration::from_micros(3));
        telemetry.record(Transport::Udp, 1, 3, Duration::from_micros(30));
        telemetry.record(Transport::Tcp, 9999, 2, Duration::from_secs(1));
        let counters = telemetry.answers("www.example.com.", "eu-west");
        counters.count(reason_index("failed_over"));
        counters.count(reason_index("failed_over"));
        let mut text = String::new();
        telemetry.render(&[("www.example.com.".into(), "eu-west".into())], &mut text);
        assert_eq!(
            value(
                &text,
                "meridian_dns_requests_total{proto=\"udp\",type=\"A\"}"
            )
            .as_deref(),
            Some("2")
        );
        assert_eq!(
            value(
                &text,
                "meridian_dns_requests_total{proto=\"tcp\",type=\"other\"}"
            )
            .as_deref(),
            Some("1")
        );
        assert_eq!(
            value(&text, "meridian_dns_responses_total{rcode=\"NXDOMAIN\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            value(
                &text,
                "meridian_dns_request_duration_seconds_bucket{proto=\"udp\",le=\"0.000005\"}"
            )
            .as_deref(),
            Some("1")
        );
        assert_eq!(
            value(
                &text,
                "meridian_dns_request_duration_seconds_bucket{proto=\"udp\",le=\"+Inf\"}"
            )
            .as_deref(),
            Some("2")
        );
        assert_eq!(
            value(
                &text,
                "meridian_gslb_answers_total{service=\"www.example.com.\",region=\"eu-west\",reason=\"failed_over\"}"
            )
            .as_deref(),
            Some("2")
        );
        // Pre-registered: zero series exist before anything happened.
        assert_eq!(
            value(
                &text,
                "meridian_dns_requests_total{proto=\"tcp\",type=\"AAAA\"}"
            )
            .as_deref(),
            Some("0")
        );
        // The same counters come back for the same names (as after a reload).
        assert_eq!(telemetry.answers("www.example.com.", "eu-west").total(), 2);
    }

    #[test]
    fn reason_indexes_match_their_labels() {
        use crate::policy::Reason;
        let all = [
            Reason::Preferred,
            Reason::FailedOver,
            Reason::Spilled,
            Reason::Weighted,
            Reason::Standby(2),
            Reason::AllDownServeAll,
            Reason::AllDownFallback,
            Reason::AllDownNoData,
            Reason::AllDownServFail,
            Reason::NoRecords,
        ];
        assert_eq!(all.len(), REASONS.len());
        for reason in all {
            assert_eq!(REASONS[reason.index()], reason.label());
            assert_eq!(reason_index(reason.label()), reason.index());
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
