//! Finished requests do not pile up: with `--finished-retention`, the real operator deletes an
//! AccessRequest that finished longer ago than that (its Logbook record printed first), and leaves
//! live ones alone.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use passport_crds::Phase;
use passport_tests::{cloudevents::json_lines, wait::eventually};

use crate::{
    E2e,
    logbook_sink::{ACTIVE_TIMEOUT, CLUSTER, SinkStack, complete},
    scenario::online_instance,
    test,
};

const RETENTION: &str = "5s";

pub fn trials() -> Vec<E2e> {
    vec![test(
        "retention::finished_requests_are_deleted_after_the_retention",
        |_env| async move { finished_are_deleted().await },
    )]
}

async fn finished_are_deleted() -> Result<()> {
    let dir = tempfile::Builder::new().prefix("passport-retention-").tempdir()?;
    let stdout = dir.path().join("stdout.jsonl");
    let args = vec![
        "--logbook-stdout".to_owned(),
        format!("--cluster-name={CLUSTER}"),
        format!("--finished-retention={RETENTION}"),
    ];
    let stack = SinkStack::start(args, Some(stdout.clone())).await?;
    let instance = online_instance(&stack.emulator).await?;
    let s = stack.scenario("retention", instance.id()).await?;
    s.request("done", "alice", "1h", &[instance.id()])?;
    s.request("live", "alice", "1h", &[instance.id()])?;
    s.wait_phase("done", Phase::Active, ACTIVE_TIMEOUT).await?;
    s.wait_phase("live", Phase::Active, ACTIVE_TIMEOUT).await?;
    complete(&s, "done").await?;
    let done = s.wait_phase("done", Phase::Completed, ACTIVE_TIMEOUT).await?;
    let uid = done.metadata.uid.clone().context("no uid")?;
    let finished = Instant::now();
    eventually(Duration::from_secs(60), || async {
        ensure!(
            s.requests.get_opt("done").await?.is_none(),
            "the finished request is still there"
        );
        Ok(())
    })
    .await
    .with_context(|| stack.operator.log_tail())?;
    let gone_after = finished.elapsed();
    // Its whole record reached the sink before it went: the completion and the revocation included.
    let printed: Vec<String> = json_lines(&stdout)?
        .iter()
        .filter(|line| line["id"].as_str().is_some_and(|id| id.starts_with(&uid)))
        .filter_map(|line| line["type"].as_str().map(str::to_owned))
        .collect();
    for action in ["created", "provisioned", "completed"] {
        let wanted = format!("dev.passport.accessrequest.{action}");
        ensure!(
            printed.contains(&wanted),
            "no {wanted} for the deleted request: {printed:?}"
        );
    }
    let live = s.requests.get("live").await?;
    ensure!(
        live.phase() == Phase::Active,
        "the live request is {:?}",
        live.phase()
    );
    println!("retention {RETENTION}: the completed request was deleted {gone_after:.1?} after it finished");
    Ok(())
}
