//! AccessPolicy target selection by EC2 tags: the operator reads the targets' tags through the
//! account's role (EC2 DescribeInstances, served by the emulator) and a policy selecting
//! `env=staging` covers an instance tagged so, and refuses one tagged `env=prod`, naming both.

use std::{sync::Arc, time::Duration};

use anyhow::{Result, ensure};
use passport_crds::Phase;
use passport_tests::{aws::Platform, ec2, fixtures, instance::Instance};

use crate::{E2e, Env, scenario::on_shared_stack, test};

const TIMEOUT: Duration = Duration::from_secs(90);

pub fn trials() -> Vec<E2e> {
    vec![test(
        "policy_tags::a_policy_selecting_by_tag_covers_tagged_instances_only",
        by_tag,
    )]
}

async fn by_tag(env: Arc<Env>) -> Result<()> {
    let emulator = env.emulator().await?;
    let instance = Instance::start().await?;
    let staging = ec2::launch(emulator, &[("env", "staging"), ("team", "payments")]).await?;
    let prod = ec2::launch(emulator, &[("env", "prod")]).await?;
    for id in [&staging, &prod] {
        emulator
            .register_agent(id, Platform::Linux, Some(instance.runner_argv()))
            .await?;
    }
    // The scenario's own policy names no instance; this one selects by tag.
    let s = on_shared_stack(&env, "tags", &["alice"], &[]).await?;
    s.apply(
        &fixtures::policy("staging")
            .namespace(&s.namespace)
            .requester_users(["alice"])
            .tags(&[("env", "staging")])
            .auto_approve_users(["alice"]),
    )?;
    s.request("on-staging", "alice", "1h", &[&staging])?;
    s.wait_phase("on-staging", Phase::Active, TIMEOUT).await?;

    s.request("on-prod", "alice", "1h", &[&prod])?;
    let denied = s.wait_phase("on-prod", Phase::Denied, TIMEOUT).await?;
    let message = denied.status.clone().unwrap_or_default().message;
    ensure!(
        message.contains("AccessPolicy staging does not allow") && message.contains(&prod),
        "the refusal should name the policy and the instance: {message}"
    );
    eprintln!("tags: {message}");
    Ok(())
}
