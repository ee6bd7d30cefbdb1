//! `extend` and `complete`: the two changes a requester may make to a request. The apiserver's schema
//! decides what is allowed (duration only grows, 12h at most; completed only goes to true) and its
//! message is shown as it is.

use std::{process::ExitCode, time::Duration};

use anyhow::{Result, anyhow};
use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use passport_crds::{AccessRequest, AccessRequestSpec, duration::format_go_duration};
use serde_json::json;

use crate::{
    args::ExtendArgs,
    cluster::{access_request, session::Session},
    ui::{
        format::{OutputFormat, structured},
        time::timestamp_relative,
    },
};

/// The new duration: the request's own plus `by`, or `to`.
pub fn new_duration(
    spec: &AccessRequestSpec,
    by: Option<Duration>,
    to: Option<Duration>,
) -> Result<Duration> {
    match (by, to) {
        (_, Some(to)) => Ok(to),
        (Some(by), None) => Ok(spec.access_duration()? + by),
        (None, None) => Err(anyhow!("say how much longer: --by 30m or --to 2h")),
    }
}

pub async fn extend(session: &Session, args: &ExtendArgs, format: OutputFormat) -> Result<ExitCode> {
    let request = access_request::get(session, &args.name).await?;
    let phase = request.phase();
    if phase.is_terminal() {
        return Err(anyhow!(
            "AccessRequest {} is {phase:?}: it cannot be extended; request access again with kubectl passport request",
            args.name
        ));
    }
    let duration = new_duration(
        &request.spec,
        args.by.as_ref().map(|d| d.value),
        args.to.as_ref().map(|d| d.value),
    )?;
    let text = format_go_duration(duration);
    // The resourceVersion makes --by safe against a concurrent extension: a conflict, not a lost one.
    let patch = json!({
        "metadata": { "resourceVersion": request.resource_version() },
        "spec": { "duration": text },
    });
    let patched = access_request::patch(session, &args.name, &patch).await?;
    if !structured(format, &patched)? {
        println!(
            "AccessRequest {} now lasts {text} (was {})",
            args.name, request.spec.duration
        );
        match patched.status.as_ref().and_then(|s| s.activated_at.as_ref()) {
            Some(activated) => {
                let end = activated.0.checked_add(SignedDuration::try_from(duration)?)?;
                println!("It now expires at {}", timestamp_relative(end, Timestamp::now()));
            }
            None => println!("The clock starts when it becomes Active."),
        }
        if let Some(hint) = approval_hint(&patched, &text) {
            println!("{hint}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// After an extension of an approved request: an approval counts only for the duration it names,
/// so the new one needs its own (unless an automatic-approval rule covers it).
pub fn approval_hint(request: &AccessRequest, wanted: &str) -> Option<String> {
    let approved = request.status.as_ref()?.approved_duration.as_deref()?;
    (approved != wanted).then(|| {
        format!(
            "{approved} was approved; unless an automatic-approval rule covers {wanted}, an approver must approve it: \
             kubectl passport approve {} -n {}",
            request.name_any(),
            request.namespace().unwrap_or_default()
        )
    })
}

pub async fn complete(session: &Session, name: &str, format: OutputFormat) -> Result<ExitCode> {
    let request = access_request::get(session, name).await?;
    let phase = request.phase();
    if phase.is_terminal() {
        println!("AccessRequest {name} has already ended ({phase:?})");
        return Ok(ExitCode::SUCCESS);
    }
    let patched = access_request::patch(session, name, &json!({ "spec": { "completed": true } })).await?;
    if !structured(format, &patched)? {
        println!("AccessRequest {name} completed: access is being revoked now");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn an_extension_of_an_approved_request_says_it_needs_approval() {
        let mut request = fixtures::access_request(&[fixtures::INSTANCE]);
        request.metadata.namespace = Some("team-a".into());
        assert_eq!(approval_hint(&request, "2h"), None, "not approved yet");
        request.status = Some(passport_crds::access_request::AccessRequestStatus {
            approved_duration: Some("1h".into()),
            ..Default::default()
        });
        assert_eq!(
            approval_hint(&request, "2h").as_deref(),
            Some(
                "1h was approved; unless an automatic-approval rule covers 2h, an approver must approve it: \
                 kubectl passport approve db -n team-a"
            )
        );
        assert_eq!(approval_hint(&request, "1h"), None);
    }

    #[test]
    fn extensions_add_or_set() -> Result<()> {
        let min = |m: u64| Some(Duration::from_secs(m * 60));
        let lasting = |duration: &str| AccessRequestSpec {
            duration: duration.into(),
            ..fixtures::access_request(&[fixtures::INSTANCE]).spec
        };
        assert_eq!(
            format_go_duration(new_duration(&lasting("1h"), min(30), None)?),
            "1h30m"
        );
        assert_eq!(
            format_go_duration(new_duration(&lasting("90m"), min(30), None)?),
            "2h"
        );
        assert_eq!(
            format_go_duration(new_duration(&lasting("1h"), None, min(180))?),
            "3h"
        );
        let err = new_duration(&lasting("garbage"), min(1), None).expect_err("not a duration");
        assert!(err.to_string().starts_with("spec.duration: \"garbage\""), "{err}");
        assert!(new_duration(&lasting("1h"), None, None).is_err());
        Ok(())
    }
}
