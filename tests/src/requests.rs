//! Watching AccessRequests move through their phases, for the suite and the demo.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kube::Api;
use passport_crds::{AccessRequest, Phase};

/// Polls until `done` holds for the request; the error carries its last status and `context()`.
pub async fn wait_for(
    api: &Api<AccessRequest>,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&AccessRequest) -> bool,
    context: impl Fn() -> String,
) -> Result<AccessRequest> {
    let deadline = Instant::now() + timeout;
    loop {
        match api.get_opt(name).await? {
            Some(request) if done(&request) => return Ok(request),
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            request => bail!(
                "{name}: not {what} after {timeout:?}; status: {}\n{}",
                request
                    .map(|r| serde_json::to_string_pretty(&r.status).unwrap_or_default())
                    .unwrap_or("gone".into()),
                context()
            ),
        }
    }
}

/// Polls until the request reaches `phase`.
pub async fn wait_phase(
    api: &Api<AccessRequest>,
    name: &str,
    phase: Phase,
    timeout: Duration,
    context: impl Fn() -> String,
) -> Result<AccessRequest> {
    let reached = |r: &AccessRequest| r.status.as_ref().is_some_and(|s| s.phase == phase);
    wait_for(api, name, &format!("{phase:?}"), timeout, reached, context).await
}
