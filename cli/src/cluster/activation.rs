//! Following an AccessRequest until it is Active or ends, describing each change in one line.

use std::time::Duration;

use anyhow::{Result, anyhow};
use passport_crds::{
    AccessRequest, Phase,
    access_request::AccessRequestStatus,
    conditions::{observe, types::APPROVED},
};

use super::{condition_text, session::Session, wait};
use crate::ui::{errors::fold, time::human_duration};

/// One line describing where a request is, for progress and for timeouts.
pub fn progress_line(status: &AccessRequestStatus) -> String {
    let phase = format!("{:?}", status.phase);
    let detail = match status.phase {
        Phase::Pending => observe(&status.conditions, APPROVED)
            .map(|c| fold(c.message))
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "waiting for approval".to_owned()),
        Phase::Provisioning => status
            .targets
            .iter()
            .map(|t| {
                let message = if t.message.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", fold(&t.message))
                };
                format!("{} {:?}{message}", t.instance_id, t.state)
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => fold(&status.message),
    };
    let failure = condition_text::reconcile_failure(&status.conditions)
        .map(|failure| format!(" (the operator reports {failure})"))
        .unwrap_or_default();
    if detail.is_empty() {
        format!("{phase}{failure}")
    } else {
        format!("{phase}: {detail}{failure}")
    }
}

/// Why a request ended, in one line: the operator's `status.message`, else the Approved condition's
/// message (where a refusal names the limit and the policy), else the phase alone.
pub fn ended(request: &AccessRequest) -> String {
    let name = request.metadata.name.as_deref().unwrap_or_default();
    let status = request.status.clone().unwrap_or_default();
    let phase = status.phase;
    // The Approved condition explains a denial or refusal, never a later failure.
    let approval = observe(&status.conditions, APPROVED)
        .filter(|_| phase == Phase::Denied)
        .map(|c| fold(c.message))
        .unwrap_or_default();
    let said = [fold(&status.message), approval]
        .into_iter()
        .find(|m| !m.is_empty());
    match said {
        Some(message) => format!(
            "AccessRequest {name} ended {phase:?}: {message}; request access again with `kubectl passport request`"
        ),
        None => request.unusable().map_or_else(
            || format!("AccessRequest {name} ended {phase:?}"),
            |u| u.to_string(),
        ),
    }
}

/// Follows the request, handing each new progress line to `progress`, until it is Active (Ok), ends
/// (Err saying why), or `timeout` passes (Err saying what it is stuck on).
pub async fn wait_active(
    session: &Session,
    name: &str,
    timeout: Duration,
    mut progress: impl FnMut(&str),
) -> Result<AccessRequest> {
    let mut last_line = String::new();
    let active = wait::until(
        &session.api(),
        name,
        timeout,
        |request: Option<&AccessRequest>| {
            let Some(request) = request else {
                return Some(Err(anyhow!("AccessRequest {name} was deleted")));
            };
            let status = request.status.as_ref()?;
            let line = progress_line(status);
            if line != last_line {
                progress(&line);
                last_line = line;
            }
            match request.unusable() {
                None => Some(Ok(request.clone())),
                Some(_) if request.phase().is_terminal() => Some(Err(anyhow!("{}", ended(request)))),
                Some(_) => None,
            }
        },
    )
    .await?;
    active.ok_or_else(|| {
        anyhow!(
            "timed out after {} waiting for AccessRequest {name} to become Active: it is still {}",
            human_duration(i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX)),
            if last_line.is_empty() {
                "without a status (is the passport operator running?)"
            } else {
                &last_line
            }
        )
    })
}

#[cfg(test)]
mod tests {
    use passport_crds::{
        access_request::{TargetState, TargetStatus},
        conditions::{ConditionStatus, types::RECONCILED},
    };

    use super::*;
    use crate::fixtures;

    #[test]
    fn progress_says_what_it_waits_for() {
        let mut status = AccessRequestStatus::default();
        assert_eq!(progress_line(&status), "Pending: waiting for approval");
        status.phase = Phase::Provisioning;
        status.targets = vec![TargetStatus {
            instance_id: fixtures::INSTANCE.into(),
            state: TargetState::Provisioning,
            message: "SSM\ncommand running".into(),
            ..Default::default()
        }];
        assert_eq!(
            progress_line(&status),
            "Provisioning: i-0123456789abcdef0 Provisioning (SSM command running)"
        );
        status.phase = Phase::Failed;
        status.message = "instance not managed by SSM".into();
        assert_eq!(progress_line(&status), "Failed: instance not managed by SSM");
    }

    #[test]
    fn an_ended_request_says_why_from_its_message_or_its_approved_condition() {
        let refused = "refused: at most 4h under AccessPolicy app-servers";
        let denied = fixtures::in_phase(&[fixtures::INSTANCE], Phase::Denied, refused);
        assert_eq!(
            ended(&denied),
            "AccessRequest db ended Denied: refused: at most 4h under AccessPolicy app-servers; \
             request access again with `kubectl passport request`"
        );
        let mut quiet = fixtures::in_phase(&[fixtures::INSTANCE], Phase::Denied, "");
        if let Some(status) = quiet.status.as_mut() {
            status.conditions = vec![fixtures::condition(
                APPROVED,
                ConditionStatus::False,
                "Refused",
                "at most 4h under AccessPolicy app-servers",
            )];
        }
        assert!(
            ended(&quiet).contains("ended Denied: at most 4h under AccessPolicy app-servers"),
            "{}",
            ended(&quiet)
        );
        let mut failed = fixtures::in_phase(&[fixtures::INSTANCE], Phase::Failed, "");
        if let Some(status) = failed.status.as_mut() {
            status.conditions = vec![fixtures::condition(
                APPROVED,
                ConditionStatus::True,
                "Approved",
                "approved by carol",
            )];
        }
        assert!(ended(&failed).starts_with("AccessRequest db is Failed: it could not be provisioned"));
    }

    #[test]
    fn progress_shows_a_failing_reconcile() {
        let status = AccessRequestStatus {
            conditions: vec![fixtures::condition(
                RECONCILED,
                ConditionStatus::False,
                "AwsUnavailable",
                "cannot assume arn:aws:iam::1:role/p",
            )],
            ..AccessRequestStatus::default()
        };
        assert_eq!(
            progress_line(&status),
            "Pending: waiting for approval (the operator reports AwsUnavailable: cannot assume arn:aws:iam::1:role/p)"
        );
    }
}
