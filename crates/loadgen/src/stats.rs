//! Latency histograms (hdrhistogram, in nanoseconds) and their summary.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A histogram for values from 1 ns to 100 s, three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// Records `nanos`, clamped into the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, nanos: u64) {
    histogram.saturating_record(nanos.max(1));
}

/// What the tables show of a distribution, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many values were recorded.
    pub count: u64,
    /// The median.
    pub p50_us: f64,
    /// The 99th percentile.
    pub p99_us: f64,
    /// The largest value.
    pub max_us: f64,
    /// The mean.
    pub mean_us: f64,
}

impl Summary {
    /// The summary of a histogram of nanoseconds; all zero when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Summary {
        if histogram.is_empty() {
            return Summary::default();
        }
        let micros = |nanos: u64| nanos as f64 / 1000.0;
        Summary {
            count: histogram.len(),
            p50_us: micros(histogram.value_at_quantile(0.50)),
            p99_us: micros(histogram.value_at_quantile(0.99)),
            max_us: micros(histogram.max()),
            mean_us: histogram.mean() / 1000.0,
        }
    }
}

/// CPU seconds spread over `units` (deliveries, round trips, tokens), in
/// microseconds each; `None` without a measurement or without units.
pub fn per_unit_micros(seconds: Option<f64>, units: u64) -> Option<f64> {
    seconds
        .filter(|_| units > 0)
        .map(|seconds| seconds * 1e6 / units as f64)
}

/// A duration in microseconds as the tables print it: µs below a millisecond, ms
/// below a second, s above.
pub fn format_micros(micros: f64) -> String {
    if micros < 1000.0 {
        format!("{micros:.1} µs")
    } else if micros < 1_000_000.0 {
        format!("{:.2} ms", micros / 1000.0)
    } else {
        format!("{:.2} s", micros / 1_000_000.0)
    }
}

/// A rate as the tables print it: `1.23 M/s`, `45.6 k/s` or `789/s`.
pub fn format_rate(per_second: f64) -> String {
    if per_second >= 1_000_000.0 {
        format!("{:.2} M/s", per_second / 1_000_000.0)
    } else if per_second >= 1000.0 {
        format!("{:.1} k/s", per_second / 1000.0)
    } else {
        format!("{per_second:.0}/s")
    }
}

/// A byte count as the tables print it: `512 B`, `7.9 KiB`, `1.50 MiB`.
pub fn format_bytes(bytes: f64) -> String {
    if bytes.abs() < 1024.0 {
        format!("{bytes:.0} B")
    } else if bytes.abs() < 1024.0 * 1024.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{:.2} MiB", bytes / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_a_hundred_microseconds() {
        let mut histogram = histogram();
        for micros in 1..=100 {
            record(&mut histogram, micros * 1000);
        }
        let summary = Summary::of(&histogram);
        assert_eq!(summary.count, 100);
        assert!((summary.p50_us - 50.0).abs() < 0.1, "{summary:?}");
        assert!((summary.p99_us - 99.0).abs() < 0.1, "{summary:?}");
        assert!((summary.max_us - 100.0).abs() < 0.1, "{summary:?}");
        assert!((summary.mean_us - 50.5).abs() < 0.1, "{summary:?}");
    }

    #[test]
    fn an_empty_histogram_summarizes_to_zero() {
        assert_eq!(Summary::of(&histogram()), Summary::default());
    }

    #[test]
    fn zero_and_huge_values_are_clamped_not_lost() {
        let mut histogram = histogram();
        record(&mut histogram, 0);
        record(&mut histogram, u64::MAX);
        assert_eq!(histogram.len(), 2);
    }

    #[test]
    fn cpu_per_unit_needs_a_measurement_and_units() {
        assert_eq!(per_unit_micros(Some(0.5), 1000), Some(500.0));
        assert_eq!(per_unit_micros(Some(0.5), 0), None);
        assert_eq!(per_unit_micros(None, 1000), None);
    }

    #[test]
    fn formats_switch_units() {
        assert_eq!(format_micros(12.34), "12.3 µs");
        assert_eq!(format_micros(8123.0), "8.12 ms");
        assert_eq!(format_micros(2_500_000.0), "2.50 s");
        assert_eq!(format_rate(250_000.0), "250.0 k/s");
        assert_eq!(format_rate(1_500_000.0), "1.50 M/s");
        assert_eq!(format_rate(10.0), "10/s");
        assert_eq!(format_bytes(100.0), "100 B");
        assert_eq!(format_bytes(8192.0), "8.0 KiB");
        assert_eq!(format_bytes(3.0 * 1024.0 * 1024.0), "3.00 MiB");
    }
}
