//! Creating CredentialRequests and waiting for the operator's answer; reading back what AWS and the
//! logbook recorded.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use aws_sdk_ssm::config::{Credentials, SharedCredentialsProvider};
use jiff::Timestamp;
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
    runtime::wait::await_condition,
};
use passport_crds::{
    CredentialRequest, CredentialRequestSpec, credential_request::CredentialRequestStatus, sealed::AwsSession,
};
use passport_tests::{instance::Instance, kubectl};
use serde_json::Value;

use super::{ISSUE_TIMEOUT, ROLE};
use crate::scenario::Scenario;

pub async fn create(api: &Api<CredentialRequest>, name: &str, spec: CredentialRequestSpec) -> Result<()> {
    let request = CredentialRequest {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    };
    api.create(&PostParams::default(), &request).await?;
    Ok(())
}

pub fn issued_condition(request: &CredentialRequest) -> Option<(String, String, String)> {
    request
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Issued" && (c.status == "True" || c.status == "False"))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Watches until the operator has decided (Issued True or False).
pub async fn wait_decided(
    s: &Scenario<'_>,
    api: &Api<CredentialRequest>,
    name: &str,
) -> Result<CredentialRequest> {
    let decided = |r: Option<&CredentialRequest>| r.is_some_and(|r| issued_condition(r).is_some());
    match tokio::time::timeout(ISSUE_TIMEOUT, await_condition(api.clone(), name, decided)).await {
        Ok(Ok(Some(request))) => Ok(request),
        Ok(Ok(None)) => bail!("CredentialRequest {name} is gone"),
        Ok(Err(err)) => bail!("watching CredentialRequest {name}: {err}"),
        Err(_) => bail!(
            "CredentialRequest {name} not decided after {ISSUE_TIMEOUT:?}: {:?}\n--- operator log ---\n{}",
            api.get_opt(name).await?.and_then(|r| r.status),
            s.operator.log_tail()
        ),
    }
}

pub fn issued_status(request: &CredentialRequest) -> Result<CredentialRequestStatus> {
    let (status, reason, message) = issued_condition(request).context("undecided")?;
    ensure!(status == "True", "refused: {reason}: {message}");
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
    ensure!(call["RoleArn"] == ROLE, "{call}");
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
        "arn:aws:ssm:us-east-1::document/AWS-StartSSHSession",
        "arn:aws:ssm:us-east-1::document/AWS-StartPortForwardingSession",
    ]
    .into();
    ensure!(resources == expected, "StartSession resources {resources:?}");
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
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = kubectl::run(
            &s.plane.admin_kubeconfig(),
            &["get", "events.events.k8s.io", "-n", &s.namespace, "-o", "json"],
            None,
        )?
        .ok()?
        .stdout;
        let events: Value = serde_json::from_str(&events)?;
        let issued: Vec<&Value> = events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["reason"] == "CredentialIssued" && e["regarding"]["name"] == "r")
            .collect();
        if let Some(event) = issued
            .iter()
            .find(|e| e["note"].as_str().is_some_and(|n| n.contains(session_name)))
        {
            ensure!(event["action"] == "credential_issued", "{event}");
            let note = event["note"].as_str().unwrap_or_default();
            ensure!(note.contains(&serial.to_string()), "{note}");
            let text = events.to_string();
            ensure!(
                !text.contains(&session.secret_access_key) && !text.contains(&session.session_token),
                "an Event carries a secret"
            );
            let log = s.operator.log_tail();
            ensure!(
                !log.contains(&session.secret_access_key) && !log.contains(&session.session_token),
                "the operator log carries a secret"
            );
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "no credential_issued Event: {issued:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
