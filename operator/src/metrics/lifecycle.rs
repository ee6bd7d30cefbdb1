//! How requests move: how many are in each phase, how long approval and access take, how late
//! revocation starts after expiry and how long it takes, and how long SSM commands run. No object
//! names in labels.

use passport_core::{lifecycle::Purpose, milestones::Milestone};
use passport_crds::Phase;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntGaugeVec, Opts, Registry};

const PHASES: [Phase; 8] = [
    Phase::Pending,
    Phase::Provisioning,
    Phase::Active,
    Phase::Revoking,
    Phase::Completed,
    Phase::Expired,
    Phase::Denied,
    Phase::Failed,
];

#[derive(Debug, Clone)]
pub struct LifecycleMetrics {
    /// AccessRequests in the cache, by phase.
    pub requests: IntGaugeVec,
    pub approval_wait: Histogram,
    pub grant_latency: Histogram,
    pub expiry_lag: Histogram,
    pub revocation_duration: Histogram,
    pub command_duration: HistogramVec,
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> prometheus::Result<Histogram> {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
}

const SECONDS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
const WAITS: [f64; 9] = [1.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0];

impl LifecycleMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            requests: IntGaugeVec::new(
                Opts::new("access_requests", "AccessRequests by phase."),
                &["phase"],
            )?,
            approval_wait: histogram(
                "approval_wait_seconds",
                "From an AccessRequest's creation to its approval.",
                &WAITS,
            )?,
            grant_latency: histogram(
                "grant_latency_seconds",
                "From an AccessRequest's creation to Active (the user exists on every target).",
                &WAITS,
            )?,
            expiry_lag: histogram(
                "expiry_lag_seconds",
                "From an AccessRequest's expiresAt to its revocation starting.",
                &SECONDS,
            )?,
            revocation_duration: histogram(
                "revocation_duration_seconds",
                "From revocation starting to every target being clean.",
                &SECONDS,
            )?,
            command_duration: HistogramVec::new(
                HistogramOpts::new(
                    "ssm_command_duration_seconds",
                    "From sending an SSM command to its outcome on a target, by purpose and result.",
                )
                .buckets(SECONDS.to_vec()),
                &["purpose", "result"],
            )?,
        };
        for phase in PHASES {
            metrics.requests.with_label_values(&[&format!("{phase:?}")]);
        }
        for purpose in [Purpose::Provision, Purpose::Revoke] {
            for result in ["success", "failure"] {
                metrics
                    .command_duration
                    .with_label_values(&[purpose.as_str(), result]);
            }
        }
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.approval_wait.clone()))?;
        registry.register(Box::new(metrics.grant_latency.clone()))?;
        registry.register(Box::new(metrics.expiry_lag.clone()))?;
        registry.register(Box::new(metrics.revocation_duration.clone()))?;
        registry.register(Box::new(metrics.command_duration.clone()))?;
        Ok(metrics)
    }

    pub fn observe(&self, milestone: &Milestone) {
        match milestone {
            Milestone::ApprovalWait(d) => self.approval_wait.observe(d.as_secs_f64()),
            Milestone::GrantLatency(d) => self.grant_latency.observe(d.as_secs_f64()),
            Milestone::ExpiryLag(d) => self.expiry_lag.observe(d.as_secs_f64()),
            Milestone::Revocation(d) => self.revocation_duration.observe(d.as_secs_f64()),
            Milestone::Command {
                purpose,
                succeeded,
                took,
            } => self
                .command_duration
                .with_label_values(&[purpose.as_str(), if *succeeded { "success" } else { "failure" }])
                .observe(took.as_secs_f64()),
        }
    }

    /// Sets the per-phase gauge from the phases of every request in the cache.
    pub fn count(&self, phases: impl Iterator<Item = Phase>) {
        let mut counts = [0i64; PHASES.len()];
        for phase in phases {
            if let Some(i) = PHASES.iter().position(|p| *p == phase) {
                counts[i] += 1;
            }
        }
        for (phase, count) in PHASES.iter().zip(counts) {
            self.requests
                .with_label_values(&[&format!("{phase:?}")])
                .set(count);
        }
    }
}
