//! Which requests to deliver next: one delivery at a time per request (so its entries go in order),
//! a few requests at a time overall, the least recently served first (so one slow or failing request
//! cannot hold the others back), and a failing request waits its backoff.
//!
//! When the sink as a whole fails (unreachable, timeouts, 5xx) twice or more with no success in
//! between, it is an outage: one request at a time probes it (no herd on a sink that is
//! struggling), at least every [`PROBE_MAX`] whatever the requests' own backoffs (so the sink's
//! return is noticed within seconds, not a minute), and the first turn it takes again lets every
//! request that failed that way retry at once. A single request failing alone (say a payload the
//! sink chokes on) only backs itself off.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use super::{backoff, sink::Failure};

/// During an outage, the sink is probed at least this often.
pub const PROBE_MAX: Duration = Duration::from_secs(5);

/// A request with undelivered entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub uid: String,
    /// When its oldest undelivered entry was written (seconds since the epoch).
    pub oldest: i64,
}

/// How one delivery turn went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub uid: String,
    /// The highest seq the sink has taken (whether or not `delivered` could be advanced to it).
    pub acked: u64,
    /// Events the sink took in this turn.
    pub sent: usize,
    pub failure: Option<Failure>,
}

#[derive(Debug, Default)]
struct Track {
    failures: u32,
    retry_at: Option<Instant>,
    sink_wide: bool,
    acked: u64,
    in_flight: bool,
    last_started: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Schedule {
    tracks: HashMap<String, Track>,
    /// Turns that failed on the sink as a whole since its last success.
    failing: u32,
    /// During an outage: failed probes so far, and when the next may go.
    probes: u32,
    probe_at: Option<Instant>,
}

impl Schedule {
    /// The highest seq the sink took for `uid` in this process (0: none known).
    pub fn acked(&self, uid: &str) -> u64 {
        self.tracks.get(uid).map_or(0, |t| t.acked)
    }

    pub fn in_flight(&self) -> usize {
        self.tracks.values().filter(|t| t.in_flight).count()
    }

    /// The sink as a whole is failing: two turns or more failed on it since it last took one.
    pub fn outage(&self) -> bool {
        self.failing >= 2
    }

    /// Up to `slots` requests to start now, marked in flight: not already in flight, past their
    /// backoff; never served first, then the least recently served, then the oldest entry.
    pub fn pick(&mut self, waiting: &[Waiting], now: Instant, slots: usize) -> Vec<String> {
        let outage = self.outage();
        let slots = if outage {
            slots.min(1usize.saturating_sub(self.in_flight()))
        } else {
            slots
        };
        // A probe may go to a request that failed on the sink as a whole, its own backoff aside.
        let probe = outage && self.probe_at.is_none_or(|at| at <= now);
        let mut ready: Vec<(Option<Instant>, i64, &str)> = waiting
            .iter()
            .filter_map(|w| {
                let track = self.tracks.get(&w.uid);
                let busy = track.is_some_and(|t| {
                    t.in_flight || (t.retry_at.is_some_and(|at| at > now) && !(probe && t.sink_wide))
                });
                (!busy).then(|| (track.and_then(|t| t.last_started), w.oldest, w.uid.as_str()))
            })
            .collect();
        ready.sort();
        let picked: Vec<String> = ready
            .into_iter()
            .take(slots)
            .map(|(_, _, uid)| uid.to_owned())
            .collect();
        for uid in &picked {
            let track = self.tracks.entry(uid.clone()).or_default();
            track.in_flight = true;
            track.last_started = Some(now);
        }
        picked
    }

    /// Records a finished turn. A failure backs the request off; a turn in which the sink took
    /// events lets every request that failed on the sink as a whole retry at once.
    pub fn done(&mut self, report: &Report, now: Instant) {
        let outage = self.outage();
        let track = self.tracks.entry(report.uid.clone()).or_default();
        track.in_flight = false;
        track.acked = track.acked.max(report.acked);
        match report.failure {
            Some(failure) => {
                track.failures = track.failures.saturating_add(1);
                track.retry_at = Some(now + backoff::delay(track.failures));
                track.sink_wide = failure.sink_wide();
                if track.sink_wide {
                    self.failing = self.failing.saturating_add(1);
                    if self.outage() {
                        self.probes = self.probes.saturating_add(1);
                        self.probe_at = Some(now + backoff::delay(self.probes).min(PROBE_MAX));
                    }
                }
            }
            None => {
                track.failures = 0;
                track.retry_at = None;
                track.sink_wide = false;
            }
        }
        if report.sent > 0 {
            self.failing = 0;
            self.probes = 0;
            self.probe_at = None;
            if outage {
                for (uid, track) in &mut self.tracks {
                    if uid != &report.uid && track.sink_wide {
                        track.retry_at = Some(now);
                        track.sink_wide = false;
                    }
                }
            }
        }
    }

    /// The next time a backed-off request may retry (or, during an outage, the sink be probed).
    pub fn next_retry(&self) -> Option<Instant> {
        let probe = self.probe_at.filter(|_| self.outage());
        self.tracks
            .values()
            .filter(|t| !t.in_flight)
            .filter_map(|t| t.retry_at)
            .chain(probe)
            .min()
    }

    /// Forgets requests that are neither `live` nor in flight.
    pub fn retain(&mut self, live: impl Fn(&str) -> bool) {
        self.tracks
            .retain(|uid, track| track.in_flight || live(uid.as_str()));
    }

    /// How long until `uid` may retry (for logs and tests).
    pub fn backoff_left(&self, uid: &str, now: Instant) -> Duration {
        self.tracks
            .get(uid)
            .and_then(|t| t.retry_at)
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now))
    }
}
