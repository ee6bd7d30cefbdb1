//! Prometheus metrics the operator exports, in the style of kube-rs/controller-rs: per-controller
//! reconcile runs, failures by a stable error label, and durations.

mod lifecycle;

use std::time::Instant;

pub use lifecycle::LifecycleMetrics;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

#[derive(Debug, Clone)]
pub struct Metrics {
    pub reconciliations: IntCounterVec,
    pub failures: IntCounterVec,
    pub reconcile_duration: HistogramVec,
    pub ssm_commands: IntCounterVec,
    /// Decided CredentialRequests, by result (`issued`, `refused`) and reason (`Issued`, or the
    /// refusal's condition reason).
    pub credential_requests: IntCounterVec,
    /// From a CredentialRequest's creationTimestamp (whole seconds) to its status being written.
    pub credential_issuance: Histogram,
    /// AccessRequests whose revocation is stuck.
    pub revocations_stuck: IntGauge,
    pub lifecycle: LifecycleMetrics,
}

impl Metrics {
    /// Registers every metric in a fresh registry prefixed `passport_`.
    pub fn new() -> prometheus::Result<(Self, Registry)> {
        let registry = Registry::new_custom(Some("passport".to_owned()), None)?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "build_info",
                "The running passport operator's version (always 1).",
            ),
            &["version"],
        )?;
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let lifecycle = LifecycleMetrics::register(&registry)?;
        let metrics = Self {
            lifecycle,
            reconciliations: IntCounterVec::new(
                Opts::new("reconciliations_total", "Reconciliations run, by controller."),
                &["controller"],
            )?,
            failures: IntCounterVec::new(
                Opts::new(
                    "reconcile_failures_total",
                    "Reconciliations that failed, by controller and error.",
                ),
                &["controller", "error"],
            )?,
            reconcile_duration: HistogramVec::new(
                HistogramOpts::new(
                    "reconcile_duration_seconds",
                    "How long reconciliations take, by controller.",
                )
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
                &["controller"],
            )?,
            ssm_commands: IntCounterVec::new(
                Opts::new("ssm_commands_total", "SSM commands sent, by purpose and result."),
                &["purpose", "result"],
            )?,
            credential_requests: IntCounterVec::new(
                Opts::new(
                    "credential_requests_total",
                    "CredentialRequests decided, by result (issued, refused) and reason.",
                ),
                &["result", "reason"],
            )?,
            credential_issuance: Histogram::with_opts(
                HistogramOpts::new(
                    "credential_issuance_seconds",
                    "From a CredentialRequest's creation (whole seconds) to its credentials being written.",
                )
                .buckets(vec![0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0]),
            )?,
            revocations_stuck: IntGauge::new(
                "revocations_stuck",
                "AccessRequests whose revocation keeps failing on some instance (see their RevocationStuck condition).",
            )?,
        };
        // Export every controller's series from the start, at zero, so dashboards and alerts see them.
        for controller in ["AccessRequest", "AwsAccount", "CredentialRequest"] {
            metrics.reconciliations.with_label_values(&[controller]);
            metrics.reconcile_duration.with_label_values(&[controller]);
        }
        metrics
            .credential_requests
            .with_label_values(&["issued", "Issued"]);
        for reason in <passport_core::credentials::Reason as strum::IntoEnumIterator>::iter() {
            metrics
                .credential_requests
                .with_label_values(&["refused", reason.as_str()]);
        }
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(metrics.reconciliations.clone()))?;
        registry.register(Box::new(metrics.failures.clone()))?;
        registry.register(Box::new(metrics.reconcile_duration.clone()))?;
        registry.register(Box::new(metrics.ssm_commands.clone()))?;
        registry.register(Box::new(metrics.credential_requests.clone()))?;
        registry.register(Box::new(metrics.credential_issuance.clone()))?;
        registry.register(Box::new(metrics.revocations_stuck.clone()))?;
        Ok((metrics, registry))
    }

    /// Counts a reconciliation and times it until the guard drops.
    pub fn reconcile(&self, controller: &str) -> ReconcileTimer {
        self.reconciliations.with_label_values(&[controller]).inc();
        ReconcileTimer {
            histogram: self.reconcile_duration.with_label_values(&[controller]),
            start: Instant::now(),
        }
    }

    pub fn failure(&self, controller: &str, error: &str) {
        self.failures.with_label_values(&[controller, error]).inc();
    }
}

#[derive(Debug)]
pub struct ReconcileTimer {
    histogram: prometheus::Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

/// The Logbook sink's metrics (no object names in labels).
#[derive(Debug, Clone)]
pub struct LogbookMetrics {
    /// Entries not yet delivered, over all AccessRequests.
    pub backlog: IntGauge,
    /// Age of the oldest undelivered entry (0 when none).
    pub oldest_undelivered_seconds: prometheus::Gauge,
    /// Events sent (or printed), successful or not.
    pub delivery_attempts: prometheus::IntCounter,
    /// Failed deliveries, by reason (connect, timeout, http_4xx, http_5xx, …, status_write).
    pub delivery_failures: IntCounterVec,
}

impl LogbookMetrics {
    /// Creates the metrics and registers them in `registry` (from [`Metrics::new`]).
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            backlog: IntGauge::new(
                "logbook_backlog",
                "Logbook entries not yet delivered to the sink, over all AccessRequests.",
            )?,
            oldest_undelivered_seconds: prometheus::Gauge::new(
                "logbook_oldest_undelivered_seconds",
                "Age of the oldest Logbook entry not yet delivered (0 when none).",
            )?,
            delivery_attempts: prometheus::IntCounter::new(
                "logbook_delivery_attempts_total",
                "Logbook records sent to the sink (or printed), successful or not.",
            )?,
            delivery_failures: IntCounterVec::new(
                Opts::new(
                    "logbook_delivery_failures_total",
                    "Logbook deliveries that failed, by reason.",
                ),
                &["reason"],
            )?,
        };
        for failure in <crate::logbook_sink::sink::Failure as strum::IntoEnumIterator>::iter() {
            metrics.delivery_failures.with_label_values(&[failure.as_str()]);
        }
        registry.register(Box::new(metrics.backlog.clone()))?;
        registry.register(Box::new(metrics.oldest_undelivered_seconds.clone()))?;
        registry.register(Box::new(metrics.delivery_attempts.clone()))?;
        registry.register(Box::new(metrics.delivery_failures.clone()))?;
        Ok(metrics)
    }
}
