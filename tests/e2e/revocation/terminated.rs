//! One of three instances is terminated while the request is Active: EC2 says so, the operator marks
//! that target Removed with EC2's word for it, the other two are revoked, and the request completes
//! without an administrator.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, Result, ensure};
use passport_crds::{Phase, access_request::TargetState};
use passport_tests::{aws::Platform, ec2, instance::Instance};

use crate::{
    Env,
    crash::no_passport_user_left,
    scenario::{on_shared_stack, online_instance, target_message},
};

use super::complete;

const TIMEOUT: Duration = Duration::from_secs(120);

pub async fn terminated_instance(env: Arc<Env>) -> Result<()> {
    let emulator = env.emulator().await?;
    let (a, b, doomed) = tokio::try_join!(
        online_instance(emulator),
        online_instance(emulator),
        Instance::start()
    )?;
    // EC2 knows this one (moto picks its id); an SSM agent for that id runs scripts on `doomed`.
    let ec2_id = ec2::launch(emulator, &[("Name", "doomed")]).await?;
    emulator
        .register_agent(&ec2_id, Platform::Linux, Some(doomed.runner_argv()))
        .await?;
    let s = on_shared_stack(&env, "terminated", &["alice"], &[a.id(), b.id(), &ec2_id]).await?;
    s.request("r", "alice", "1h", &[a.id(), b.id(), &ec2_id])?;
    s.wait_phase("r", Phase::Active, TIMEOUT).await?;

    ec2::terminate(emulator, &ec2_id).await?;
    emulator.remove_agent(&ec2_id).await?;
    complete(&s, "r").await?;
    let done = s
        .wait_phase("r", Phase::Completed, TIMEOUT)
        .await
        .with_context(|| "a terminated instance must not keep the request from completing".to_owned())?;
    let status = done.status.clone().unwrap_or_default();
    let gone = status
        .targets
        .iter()
        .find(|t| t.instance_id == ec2_id)
        .context("no status for the terminated target")?;
    ensure!(
        gone.state == TargetState::Removed && gone.message.contains("terminated"),
        "the terminated target should be Removed, saying EC2 reports it terminated: {}",
        target_message(&done)
    );
    for instance in [&a, &b] {
        no_passport_user_left(instance).await?;
    }
    eprintln!("terminated: {}", target_message(&done));
    Ok(())
}
