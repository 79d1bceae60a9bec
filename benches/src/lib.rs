//! Shared helpers of the benchmarks: timing statistics and a scratch
//! network namespace, so benchmarks never touch the host's ruleset.

use std::time::{Duration, Instant};

/// Median of a list of durations (the list is sorted in place).
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// Time `runs` calls of `f`, after `warmup` untimed calls.
pub fn time_runs(warmup: usize, runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..warmup {
        f();
    }
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect()
}

/// Time `runs` calls of `f`, each after an untimed call of `setup`.
pub fn time_with_setup(runs: usize, mut setup: impl FnMut(), mut f: impl FnMut()) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            setup();
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect()
}

/// Microseconds, for printing.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
