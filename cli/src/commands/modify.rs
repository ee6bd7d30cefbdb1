//! `extend` and `complete`: the two changes a requester may make to a request. The apiserver's schema
//! decides what is allowed (duration only grows, 12h at most; completed only goes to true) and its
//! message is shown as it is.

use std::{process::ExitCode, time::Duration};

use anyhow::{Result, anyhow};
use jiff::Timestamp;
use kube::{
    ResourceExt,
    api::{Patch, PatchParams},
};
use passport_crds::duration::{format_go_duration, parse_go_duration};
use serde_json::json;

use crate::{
    args::{ExtendArgs, Output},
    errors, output,
    session::Session,
    target,
};

/// The new `spec.duration`: `current + by`, or `to`.
pub fn new_duration(current: &str, by: Option<Duration>, to: Option<Duration>) -> Result<String> {
    match (by, to) {
        (_, Some(to)) => Ok(format_go_duration(to)),
        (Some(by), None) => {
            let current = parse_go_duration(current)
                .map_err(|err| anyhow!("the request's current duration does not parse: {err}"))?;
            Ok(format_go_duration(current + by))
        }
        (None, None) => Err(anyhow!("say how much longer: --by 30m or --to 2h")),
    }
}

pub async fn extend(session: &Session, args: &ExtendArgs, format: Output) -> Result<ExitCode> {
    let request = session.request(&args.name).await?;
    let phase = target::phase(&request);
    if phase.is_terminal() {
        return Err(anyhow!(
            "AccessRequest {} is {phase:?}: it cannot be extended; request access again with kubectl passport request",
            args.name
        ));
    }
    let duration = new_duration(
        &request.spec.duration,
        args.by.as_ref().map(|d| d.value),
        args.to.as_ref().map(|d| d.value),
    )?;
    // The resourceVersion makes --by safe against a concurrent extension: a conflict, not a lost one.
    let patch = json!({
        "metadata": { "resourceVersion": request.resource_version() },
        "spec": { "duration": duration },
    });
    let patched = session
        .requests()
        .patch(&args.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|err| errors::api(err, "patch", "accessrequests", &session.namespace))?;
    if !output::structured(format, &patched)? {
        println!(
            "AccessRequest {} now lasts {duration} (was {})",
            args.name, request.spec.duration
        );
        match patched.status.as_ref().and_then(|s| s.activated_at.as_ref()) {
            Some(activated) => {
                let end = parse_go_duration(&duration)
                    .ok()
                    .and_then(|d| jiff::SignedDuration::try_from(d).ok())
                    .and_then(|d| activated.0.checked_add(d).ok());
                if let Some(end) = end {
                    println!(
                        "It now expires at {}",
                        output::timestamp_relative(end, Timestamp::now())
                    );
                }
            }
            None => println!("The clock starts when it becomes Active."),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn complete(session: &Session, name: &str, format: Output) -> Result<ExitCode> {
    let request = session.request(name).await?;
    let phase = target::phase(&request);
    if phase.is_terminal() {
        println!("AccessRequest {name} has already ended ({phase:?})");
        return Ok(ExitCode::SUCCESS);
    }
    let patch = json!({ "spec": { "completed": true } });
    let patched = session
        .requests()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|err| errors::api(err, "patch", "accessrequests", &session.namespace))?;
    if !output::structured(format, &patched)? {
        println!("AccessRequest {name} completed: access is being revoked now");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_add_or_set() -> Result<()> {
        let min = |m: u64| Some(Duration::from_secs(m * 60));
        assert_eq!(new_duration("1h", min(30), None)?, "1h30m");
        assert_eq!(new_duration("90m", min(30), None)?, "2h");
        assert_eq!(new_duration("1h", None, min(180))?, "3h");
        assert!(new_duration("garbage", min(1), None).is_err());
        assert!(new_duration("1h", None, None).is_err());
        Ok(())
    }
}
