//! `/metrics` parses as Prometheus text, and the lifecycle metrics move as requests go through their
//! lives: approval wait and grant latency when they become Active, SSM command durations, expiry lag
//! when one expires, revocation duration when they end, and the per-phase gauge.

use std::time::Duration;

use anyhow::ensure;
use kube::api::{Patch, PatchParams};
use passport_crds::Phase;
use passport_tests::{metrics, wait::eventually};

use crate::{E2e, scenario::OwnStack, test};

const TIMEOUT: Duration = Duration::from_secs(150);

pub fn trials() -> Vec<E2e> {
    vec![test(
        "metrics::lifecycle_metrics_move_with_requests",
        |_env| async move {
            let stack = OwnStack::start().await?;
            let (instance, s) = stack.with_instance("metrics").await?;
            let before = metrics::scrape(&stack.operator).await?;
            let count = |scrape: &prometheus_parse::Scrape, name: &str| {
                metrics::value(scrape, name, &[]).unwrap_or(0.0)
            };
            ensure!(
                metrics::value(&before, "passport_access_requests", &[("phase", "Active")]).is_some(),
                "the per-phase gauge is exported from the start"
            );

            s.request("expires", "alice", "1m", &[instance.id()])?;
            s.request("completes", "alice", "1h", &[instance.id()])?;
            s.wait_phase("completes", Phase::Active, TIMEOUT).await?;
            let patch = serde_json::json!({ "spec": { "completed": true } });
            s.requests
                .patch("completes", &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            s.wait_phase("completes", Phase::Completed, TIMEOUT).await?;
            s.wait_phase("expires", Phase::Expired, TIMEOUT).await?;

            // The gauges refresh every 15 s; the histograms move right after each status write.
            let after = eventually(Duration::from_secs(30), || async {
                let after = metrics::scrape(&stack.operator).await?;
                let ended = metrics::value(&after, "passport_access_requests", &[("phase", "Completed")]);
                ensure!(ended == Some(1.0), "per-phase gauge: Completed = {ended:?}");
                for (name, at_least) in [
                    ("passport_approval_wait_seconds_count", 2.0),
                    ("passport_grant_latency_seconds_count", 2.0),
                    ("passport_expiry_lag_seconds_count", 1.0),
                    ("passport_revocation_duration_seconds_count", 2.0),
                ] {
                    let moved = count(&after, name) - count(&before, name);
                    ensure!(
                        moved >= at_least,
                        "{name} moved by {moved}, expected at least {at_least}"
                    );
                }
                let provisioned = metrics::value(
                    &after,
                    "passport_ssm_command_duration_seconds_count",
                    &[("purpose", "provision"), ("result", "success")],
                )
                .unwrap_or(0.0);
                ensure!(
                    provisioned >= 2.0,
                    "provisioning command durations observed: {provisioned}"
                );
                Ok(after)
            })
            .await?;
            let lag = count(&after, "passport_expiry_lag_seconds_sum");
            eprintln!(
                "metrics: expiry lag {lag:.3}s; /metrics parsed with {} samples",
                after.samples.len()
            );
            Ok(())
        },
    )]
}
