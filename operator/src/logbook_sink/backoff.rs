//! Retry delays: exponential from 1 s, capped at 60 s.

use std::time::Duration;

pub const FIRST: Duration = Duration::from_secs(1);
pub const MAX: Duration = Duration::from_secs(60);

/// The wait after the `failures`-th failure in a row (1 → 1 s, 2 → 2 s, 3 → 4 s, … 60 s at most);
/// no wait before any failure.
pub fn delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let exponent = (failures - 1).min(16);
    FIRST.saturating_mul(1 << exponent).min(MAX)
}
