//! Structured logs: one JSON object per line on standard error, filtered
//! by `D4C_LOG` (`info` by default; e.g. `D4C_LOG=d4c_runtime=debug`).
//!
//! A condition that repeats on every turn of the main loop (a container's
//! unreadable bundle, a full row table) is logged through a [`Throttle`]:
//! the first occurrence per key, then at most once per
//! [`REPEAT_LOG_INTERVAL`] with how many were held back, so a stuck
//! container cannot flood the log (issue 14: a WARN four times a second
//! per container). What is held back is counted, never lost from metrics.

use std::collections::HashMap;
use std::time::Duration;

/// Installs the subscriber; a second call does nothing.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("D4C_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// How often a repeating condition is logged again, per key.
pub const REPEAT_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The most keys a [`Throttle`] remembers; past it, it forgets them all
/// (each key is then logged once more), so memory stays bounded however
/// many containers come and go.
pub const MAX_THROTTLED_KEYS: usize = 4_096;

/// Per-key log rate limiting: which occurrences of a repeating condition
/// to log. Keys are the condition and its subject (`"bundle <id>"`).
#[derive(Debug)]
pub struct Throttle {
    every_ns: u64,
    /// Per key: when it was last logged (boot ns), and the occurrences
    /// held back since.
    keys: HashMap<String, (u64, u64)>,
    /// Occurrences held back since start (`d4c_log_suppressed_total`).
    pub suppressed: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(REPEAT_LOG_INTERVAL)
    }
}

impl Throttle {
    /// A throttle that logs each key at most once per `every`.
    pub fn new(every: Duration) -> Throttle {
        Throttle { every_ns: u64::try_from(every.as_nanos()).unwrap_or(u64::MAX), keys: HashMap::new(), suppressed: 0 }
    }

    /// An occurrence of `key` at `now_ns` (any monotonic clock in ns).
    /// `Some(held_back)`: log it, saying it repeated `held_back` times
    /// since it was last logged (0 for the first). `None`: held back, and
    /// counted.
    pub fn admit(&mut self, key: &str, now_ns: u64) -> Option<u64> {
        if let Some((last, held)) = self.keys.get_mut(key) {
            if now_ns.saturating_sub(*last) < self.every_ns {
                *held += 1;
                self.suppressed += 1;
                return None;
            }
            let repeated = *held;
            (*last, *held) = (now_ns, 0);
            return Some(repeated);
        }
        if self.keys.len() >= MAX_THROTTLED_KEYS {
            self.keys.clear();
        }
        self.keys.insert(key.to_owned(), (now_ns, 0));
        Some(0)
    }

    /// Forgets `key` (its subject is gone): its next occurrence is logged.
    pub fn forget(&mut self, key: &str) {
        self.keys.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 14, fault 13): an unreadable bundle logged a WARN
    /// and a full row table an ERROR on every scan, four times a second
    /// per container. The first occurrence is logged, then at most one a
    /// minute saying how many were held back; the held back are counted.
    #[test]
    fn repeated_warnings_are_rate_limited() {
        let second = 1_000_000_000;
        let mut throttle = Throttle::default();
        // Four scans a second for two minutes, for one container.
        let logged: Vec<(u64, u64)> = (0..480u64)
            .filter_map(|turn| {
                let now = turn * second / 4;
                throttle.admit("bundle a", now).map(|held| (now / second, held))
            })
            .collect();
        assert_eq!(logged, [(0, 0), (60, 239)]);
        assert_eq!(throttle.suppressed, 478);
        // Another key is logged on its own; a forgotten one is logged again.
        assert_eq!(throttle.admit("bundle b", 119 * second), Some(0));
        throttle.forget("bundle a");
        assert_eq!(throttle.admit("bundle a", 119 * second), Some(0));
    }

    #[test]
    fn a_throttle_forgets_past_its_bound() {
        let mut throttle = Throttle::new(Duration::from_secs(60));
        for i in 0..=MAX_THROTTLED_KEYS {
            assert_eq!(throttle.admit(&format!("k{i}"), 0), Some(0));
        }
        assert!(throttle.keys.len() <= MAX_THROTTLED_KEYS);
    }
}
