//! Watching AccessRequests move through their phases, for the suite and the demo.

use std::time::Duration;

use anyhow::{Result, bail};
use kube::Api;
use passport_crds::{AccessRequest, Phase};

use crate::wait;

/// Watches the request until `done` holds for it; the error carries its last status and `context()`.
pub async fn wait_for(
    api: &Api<AccessRequest>,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&AccessRequest) -> bool,
    context: impl Fn() -> String,
) -> Result<AccessRequest> {
    let reached = |request: Option<&AccessRequest>| request.is_some_and(&done);
    match wait::object(api, name, timeout, reached).await {
        Ok(Some(request)) => Ok(request),
        outcome => {
            let why = match outcome {
                Err(err) => format!("{err:#}"),
                Ok(_) => "gone".to_owned(),
            };
            let status = match api.get_opt(name).await {
                Ok(Some(request)) => serde_json::to_string_pretty(&request.status).unwrap_or_default(),
                Ok(None) => "gone".to_owned(),
                Err(err) => format!("unreadable: {err}"),
            };
            bail!("{name}: not {what} ({why}); status: {status}\n{}", context())
        }
    }
}

/// Watches the request until it reaches `phase`.
pub async fn wait_phase(
    api: &Api<AccessRequest>,
    name: &str,
    phase: Phase,
    timeout: Duration,
    context: impl Fn() -> String,
) -> Result<AccessRequest> {
    // The operator's word, not the default a request without status would read as.
    let reached = |r: &AccessRequest| r.status.as_ref().is_some_and(|s| s.phase == phase);
    wait_for(api, name, &format!("{phase:?}"), timeout, reached, context).await
}

/// Watches until the request is gone (its finalizer done).
pub async fn wait_gone(
    api: &Api<AccessRequest>,
    name: &str,
    timeout: Duration,
    context: impl Fn() -> String,
) -> Result<()> {
    let gone = |request: Option<&AccessRequest>| request.is_none();
    match wait::object(api, name, timeout, gone).await {
        Ok(_) => Ok(()),
        Err(err) => bail!("{name}: still present ({err:#})\n{}", context()),
    }
}
