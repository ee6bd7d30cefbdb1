//! Creating CredentialRequests and waiting for the operator's answer; reading back what AWS and the
//! logbook recorded.

use std::{collections::BTreeSet, time::Duration};

use anyhow::{Context, Result, bail, ensure};
use aws_sdk_ssm::config::{Credentials, SharedCredentialsProvider};
use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event;
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use passport_crds::{
    CredentialRequest, CredentialRequestSpec,
    conditions::{ConditionStatus, Observed, observe, types::ISSUED},
    credential_request::CredentialRequestStatus,
    sealed::AwsSession,
};
use passport_tests::{fixtures::ROLE_ARN, instance::Instance, wait};
use serde_json::Value;

use super::ISSUE_TIMEOUT;
use crate::scenario::Scenario;

pub async fn create(api: &Api<CredentialRequest>, name: &str, spec: CredentialRequestSpec) -> Result<()> {
    api.create(&PostParams::default(), &CredentialRequest::new(name, spec))
        .await?;
    Ok(())
}

/// The operator's decision: the Issued condition once it is True or False.
pub fn issued_condition(request: &CredentialRequest) -> Option<Observed<'_>> {
    let conditions = &request.status.as_ref()?.conditions;
    observe(conditions, ISSUED).filter(|issued| issued.status != ConditionStatus::Unknown)
}

/// Watches until the operator has decided (Issued True or False).
pub async fn wait_decided(
    s: &Scenario<'_>,
    api: &Api<CredentialRequest>,
    name: &str,
) -> Result<CredentialRequest> {
    let decided = |r: Option<&CredentialRequest>| r.is_some_and(|r| issued_condition(r).is_some());
    match wait::object(api, name, ISSUE_TIMEOUT, decided).await {
        Ok(Some(request)) => Ok(request),
        Ok(None) => bail!("CredentialRequest {name} is gone"),
        Err(err) => bail!(
            "CredentialRequest {name} not decided ({err:#}): {:?}\n--- operator log ---\n{}",
            api.get_opt(name).await?.and_then(|r| r.status),
            s.operator.log_tail()
        ),
    }
}

pub fn issued_status(request: &CredentialRequest) -> Result<CredentialRequestStatus> {
    let issued = issued_condition(request).context("undecided")?;
    ensure!(
        issued.status == ConditionStatus::True,
        "refused: {}: {}",
        issued.reason,
        issued.message
    );
    request.status.clone().context("no status")
}

/// STS GetCallerIdentity with the unsealed credentials, against the emulator.
pub async fn caller_arn(s: &Scenario<'_>, session: &AwsSession) -> Result<String> {
    let credentials = Credentials::new(
        session.access_key_id.clone(),
        session.secret_access_key.clone(),
        Some(session.session_token.clone()),
        None,
        "unsealed",
    );
    let config = s
        .emulator
        .sdk_config()
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build();
    let identity = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await?;
    Ok(identity.arn().unwrap_or_default().to_owned())
}

/// The AssumeRole moto recorded for the session: exactly the request's instance and the two
/// documents, every statement conditioned on the request's expiry.
pub async fn check_recorded_policy(
    s: &Scenario<'_>,
    instance: &Instance,
    session_name: &str,
    expires_at: Timestamp,
    session: &AwsSession,
) -> Result<()> {
    let calls = s.emulator.assumed_roles().await?;
    let call = calls
        .iter()
        .find(|c| c["RoleSessionName"] == session_name)
        .with_context(|| format!("no AssumeRole with session name {session_name}: {calls:#?}"))?;
    ensure!(call["RoleArn"] == ROLE_ARN, "{call}");
    ensure!(call["ExternalId"] == format!("e2e-{}", s.namespace), "{call}");
    ensure!(call["AccessKeyId"] == session.access_key_id.as_str(), "{call}");
    let duration = call["DurationSeconds"].as_i64().unwrap_or_default();
    ensure!((900..=3600).contains(&duration), "DurationSeconds {duration}");
    let policy: Value = serde_json::from_str(call["Policy"].as_str().context("no Policy")?)?;
    let statements = policy["Statement"].as_array().context("no statements")?;
    let start = statements
        .iter()
        .find(|st| st["Action"] == serde_json::json!(["ssm:StartSession"]))
        .context("no StartSession statement")?;
    let resources: BTreeSet<&str> = start["Resource"]
        .as_array()
        .context("no resources")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let instance_arn = format!("arn:aws:ec2:us-east-1:123456789012:instance/{}", instance.id());
    let expected: BTreeSet<&str> = [
        instance_arn.as_str(),
        "arn:aws:ssm:us-east-1:123456789012:document/Passport-SSH",
        "arn:aws:ssm:us-east-1:123456789012:document/Passport-RDP",
    ]
    .into();
    ensure!(resources == expected, "StartSession resources {resources:?}");
    check_session_documents(s).await?;
    let deadline = expires_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    for statement in statements {
        ensure!(
            statement["Condition"]["DateLessThan"]["aws:CurrentTime"] == deadline.as_str(),
            "statement without the expiry condition: {statement}"
        );
    }
    Ok(())
}

/// The logbook Event on the AccessRequest names the serial and session, and no secret.
pub async fn check_logbook(
    s: &Scenario<'_>,
    session_name: &str,
    serial: u64,
    session: &AwsSession,
) -> Result<()> {
    let events: Api<Event> = Api::namespaced(s.admin.clone(), &s.namespace);
    let issued = |e: &Event| {
        e.reason.as_deref() == Some("CredentialIssued")
            && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("r")
    };
    let event = match wait::any(&events, Duration::from_secs(10), |e| {
        issued(e) && e.note.as_deref().is_some_and(|n| n.contains(session_name))
    })
    .await
    {
        Ok(event) => event,
        Err(err) => {
            let seen: Vec<Event> = events
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(issued)
                .collect();
            bail!("no credential_issued Event ({err:#}): {seen:?}");
        }
    };
    ensure!(event.action.as_deref() == Some("credential_issued"), "{event:?}");
    let note = event.note.as_deref().unwrap_or_default();
    ensure!(note.contains(&serial.to_string()), "{note}");
    let text = serde_json::to_string(&events.list(&ListParams::default()).await?.items)?;
    ensure!(
        !text.contains(&session.secret_access_key) && !text.contains(&session.session_token),
        "an Event carries a secret"
    );
    let log = s.operator.log_tail();
    ensure!(
        !log.contains(&session.secret_access_key) && !log.contains(&session.session_token),
        "the operator log carries a secret"
    );
    Ok(())
}

/// The AccessRequest's durable record (`status.logbook`) has the `credential_issued` entry: by the
/// requester, naming the key type, serial, key id and targets.
pub async fn check_logbook_record(
    s: &Scenario<'_>,
    access_request: &str,
    serial: u64,
    instance_id: &str,
) -> Result<()> {
    let record = s
        .requests
        .get(access_request)
        .await?
        .status
        .and_then(|st| st.logbook)
        .context("no status.logbook")?;
    let entry = record
        .entries
        .iter()
        .find(|e| e.action == "credential_issued" && e.message.contains(&serial.to_string()))
        .with_context(|| format!("no credential_issued entry for serial {serial}: {record:?}"))?;
    ensure!(entry.actor == "alice", "{entry:?}");
    for part in [
        format!("ed25519 certificate serial {serial}"),
        format!("(key id \"{}/", s.namespace),
        "valid until ".to_owned(),
        format!("for target(s) {instance_id}"),
    ] {
        ensure!(
            entry.message.contains(&part),
            "no {part:?} in {:?}",
            entry.message
        );
    }
    let seqs: Vec<u64> = record.entries.iter().map(|e| e.seq).collect();
    ensure!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "the record's seqs are not consecutive: {seqs:?}"
    );
    Ok(())
}

/// The documents the session policy names exist in the account, as passport wrote them: Session
/// documents that reach port 22 (over the streams) and 3389 (a local port forward) and no other.
async fn check_session_documents(s: &Scenario<'_>) -> Result<()> {
    let ssm = aws_sdk_ssm::Client::new(&s.emulator.sdk_config());
    for (name, port) in [("Passport-SSH", "22"), ("Passport-RDP", "3389")] {
        let document = ssm.get_document().name(name).send().await?;
        ensure!(
            document.document_type() == Some(&aws_sdk_ssm::types::DocumentType::Session),
            "{name} is {:?}",
            document.document_type()
        );
        let content: Value = serde_json::from_str(document.content().unwrap_or_default())?;
        ensure!(content["sessionType"] == "Port", "{name}: {content}");
        ensure!(content["properties"]["portNumber"] == port, "{name}: {content}");
    }
    Ok(())
}
