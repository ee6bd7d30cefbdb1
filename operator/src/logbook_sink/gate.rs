//! The fail-closed gate: while too many Logbook entries wait for the sink, no new access is granted.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

/// A cheap, cloneable view of the Logbook backlog for the AccessRequest controller. Open when no
/// sink is configured; with one, open once the backlog has been counted and while it is below the
/// limit.
#[derive(Debug, Clone)]
pub struct AuditGate {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// An HTTP sink is configured: it can lag, so new grants wait when it is too far behind.
    enabled: bool,
    /// Records leave the cluster (an HTTP sink, or stdout): a request goes only once its record has.
    exporting: bool,
    limit: u64,
    counted: AtomicBool,
    backlog: AtomicU64,
}

impl AuditGate {
    /// A gate for a configured sink that closes at `limit` undelivered entries.
    pub fn new(limit: u64) -> Self {
        Self::with(true, true, limit)
    }

    /// Always open, records printed on stdout (which cannot lag).
    pub fn stdout_only() -> Self {
        Self::with(false, true, u64::MAX)
    }

    /// Always open: no sink is configured, the records live only in the requests.
    pub fn disabled() -> Self {
        Self::with(false, false, u64::MAX)
    }

    fn with(enabled: bool, exporting: bool, limit: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                enabled,
                exporting,
                limit,
                counted: AtomicBool::new(false),
                backlog: AtomicU64::new(0),
            }),
        }
    }

    /// Whether new grants may proceed.
    pub fn open(&self) -> bool {
        self.reason().is_none()
    }

    /// Why the gate is closed (for the AuditSinkUnavailable condition's message); `None` if open.
    pub fn reason(&self) -> Option<String> {
        let inner = &self.inner;
        if !inner.enabled {
            return None;
        }
        if !inner.counted.load(Ordering::Acquire) {
            return Some(
                "the Logbook sink's backlog is not counted yet (the operator is starting)".to_owned(),
            );
        }
        let backlog = inner.backlog.load(Ordering::Acquire);
        (backlog >= inner.limit).then(|| {
            format!(
                "{backlog} Logbook records are waiting for the audit sink (limit {}); new access is granted once it catches up",
                inner.limit
            )
        })
    }

    /// Whether records leave the cluster (a sink or stdout): they must before their request may go,
    /// and only then may a finished request be deleted after the retention.
    pub fn delivering(&self) -> bool {
        self.inner.exporting
    }

    /// Undelivered entries over all requests, as last counted.
    pub fn backlog(&self) -> u64 {
        self.inner.backlog.load(Ordering::Acquire)
    }

    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// Records a fresh count (by the delivery worker).
    pub(crate) fn set_backlog(&self, backlog: u64) {
        self.inner.backlog.store(backlog, Ordering::Release);
        self.inner.counted.store(true, Ordering::Release);
    }
}
