//! The AWS emulator itself, through the real SDK: moto extended by `tests/aws/passport_moto.py` runs
//! scripts on registered instances and reports their real exit code and output, lists managed
//! instances, rejects what AWS rejects, and throttles on request so the SDK's retries are exercised.

use std::{sync::Mutex, time::Duration};

use anyhow::{Result, bail, ensure};
use aws_sdk_ssm::{
    Client,
    error::ProvideErrorMetadata,
    operation::{get_command_invocation::GetCommandInvocationOutput, send_command::SendCommandError},
    types::{CommandInvocationStatus, InstanceInformationStringFilter, PlatformType},
};
use passport_tests::{
    aws::{AwsEmulator, Platform},
    wait::eventually,
};

use crate::{E2e, alone};

const LINUX: &str = "i-0a1b2c3d4e5f60001";
const WINDOWS: &str = "i-0a1b2c3d4e5f60002";
const UNREGISTERED: &str = "i-0a1b2c3d4e5f6ffff";

pub fn trials() -> Vec<E2e> {
    vec![
        alone(
            "aws::agent_runs_the_script_and_reports_its_exit_code",
            agent_runs_the_script,
        ),
        alone(
            "aws::describe_instance_information_lists_registered_agents",
            describe_lists_agents,
        ),
        alone(
            "aws::send_command_to_unregistered_instance_fails",
            unregistered_instance_fails,
        ),
        alone(
            "aws::throttled_send_command_is_retried",
            throttled_send_command_is_retried,
        ),
        alone("aws::send_command_rejects_51_instances", rejects_51_instances),
    ]
}

async fn start() -> Result<(AwsEmulator, Client)> {
    let aws = AwsEmulator::start().await?;
    let client = Client::new(&aws.sdk_config());
    Ok((aws, client))
}

/// A harmless stand-in for the isolated instance: the host's shell runs a script that only echoes.
fn shell_runner() -> Option<Vec<String>> {
    Some(vec!["/bin/sh".to_owned()])
}

async fn send(client: &Client, instance: &str, document: &str, lines: &[&str]) -> Result<String> {
    let lines = lines.iter().map(|line| line.to_string()).collect();
    let sent = client
        .send_command()
        .instance_ids(instance)
        .document_name(document)
        .comment("passport self-check")
        .parameters("commands", lines)
        .send()
        .await?;
    Ok(sent
        .command()
        .and_then(|c| c.command_id())
        .unwrap_or_default()
        .to_owned())
}

async fn invocation(client: &Client, command_id: &str, instance: &str) -> Result<GetCommandInvocationOutput> {
    Ok(client
        .get_command_invocation()
        .command_id(command_id)
        .instance_id(instance)
        .send()
        .await?)
}

async fn agent_runs_the_script() -> Result<()> {
    let (aws, client) = start().await?;
    aws.register_agent(LINUX, Platform::Linux, shell_runner()).await?;
    let script = ["sleep 1", "echo hello", "exit 3"];
    let command_id = send(&client, LINUX, "AWS-RunShellScript", &script).await?;

    let first = invocation(&client, &command_id, LINUX).await?;
    ensure!(
        matches!(
            first.status(),
            Some(CommandInvocationStatus::Pending | CommandInvocationStatus::InProgress)
        ),
        "right after SendCommand the invocation should be pending, got {:?}",
        first.status()
    );
    ensure!(
        first.response_code() == -1,
        "unfinished invocation has response code {}",
        first.response_code()
    );
    // Every status the invocation shows on its way (SSM has no watch: it is polled).
    let seen = Mutex::new(vec![first.status().cloned()]);
    let done = eventually(Duration::from_secs(20), || async {
        let current = invocation(&client, &command_id, LINUX).await?;
        let mut seen = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.last() != Some(&current.status().cloned()) {
            seen.push(current.status().cloned());
        }
        ensure!(
            !matches!(
                current.status(),
                Some(CommandInvocationStatus::Pending | CommandInvocationStatus::InProgress)
            ),
            "still {:?}; log:\n{}",
            current.status(),
            aws.log()
        );
        Ok(current)
    })
    .await?;
    let seen = seen.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    ensure!(
        seen.contains(&Some(CommandInvocationStatus::InProgress)),
        "never saw InProgress: {seen:?}"
    );
    ensure!(
        done.status() == Some(&CommandInvocationStatus::Failed),
        "ended {:?}",
        done.status()
    );
    ensure!(
        done.response_code() == 3,
        "response code {}",
        done.response_code()
    );
    ensure!(
        done.standard_output_content() == Some("hello\n"),
        "stdout {:?}",
        done.standard_output_content()
    );

    let recorded = aws.commands().await?;
    ensure!(recorded.len() == 1, "recorded {recorded:?}");
    let command = &recorded[0];
    ensure!(
        command.command_id == command_id && command.instance_ids == [LINUX],
        "{command:?}"
    );
    ensure!(command.document_name == "AWS-RunShellScript" && command.comment == "passport self-check");
    ensure!(
        command.script() == script.join("\n"),
        "recorded script {:?}",
        command.script()
    );
    ensure!(
        command.status == "Failed" && command.invocations[0].response_code == 3,
        "{command:?}"
    );

    // A Windows agent without a runner takes the command but cannot run it: it stays InProgress.
    aws.register_agent(WINDOWS, Platform::Windows, None).await?;
    let command_id = send(&client, WINDOWS, "AWS-RunPowerShellScript", &["Write-Output hi"]).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let windows = invocation(&client, &command_id, WINDOWS).await?;
    ensure!(
        windows.status() == Some(&CommandInvocationStatus::InProgress),
        "{:?}",
        windows.status()
    );
    Ok(())
}

async fn describe_lists_agents() -> Result<()> {
    let (aws, client) = start().await?;
    aws.register_agent(LINUX, Platform::Linux, shell_runner()).await?;
    aws.register_agent(WINDOWS, Platform::Windows, None).await?;
    let listed = |filter_ids: &'static [&'static str]| {
        let client = client.clone();
        async move {
            let filter = InstanceInformationStringFilter::builder()
                .key("InstanceIds")
                .set_values(Some(filter_ids.iter().map(|id| id.to_string()).collect()))
                .build()?;
            let answer = client
                .describe_instance_information()
                .filters(filter)
                .send()
                .await?;
            let infos = answer.instance_information_list().to_vec();
            anyhow::Ok(
                infos
                    .iter()
                    .map(|info| {
                        (
                            info.instance_id().unwrap_or_default().to_owned(),
                            info.platform_type().cloned(),
                        )
                    })
                    .collect::<Vec<_>>(),
            )
        }
    };
    let mut found = listed(&[LINUX, WINDOWS, UNREGISTERED]).await?;
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let expected = vec![
        (LINUX.to_owned(), Some(PlatformType::Linux)),
        (WINDOWS.to_owned(), Some(PlatformType::Windows)),
    ];
    ensure!(found == expected, "DescribeInstanceInformation listed {found:?}");
    ensure!(
        listed(&[UNREGISTERED]).await?.is_empty(),
        "an unregistered instance is listed"
    );

    let all = client.describe_instance_information().send().await?;
    let online = all
        .instance_information_list()
        .iter()
        .all(|i| i.ping_status().map(|s| s.as_str()) == Some("Online"));
    ensure!(all.instance_information_list().len() == 2 && online, "{all:?}");

    aws.remove_agent(WINDOWS).await?;
    ensure!(
        listed(&[WINDOWS]).await?.is_empty(),
        "a removed agent is still listed"
    );
    Ok(())
}

async fn unregistered_instance_fails() -> Result<()> {
    let (aws, client) = start().await?;
    aws.register_agent(LINUX, Platform::Linux, shell_runner()).await?;
    for instances in [vec![UNREGISTERED], vec![LINUX, UNREGISTERED]] {
        let result = client
            .send_command()
            .set_instance_ids(Some(instances.iter().map(|id| id.to_string()).collect()))
            .document_name("AWS-RunShellScript")
            .parameters("commands", vec!["echo never".to_owned()])
            .send()
            .await;
        match result.map_err(|err| err.into_service_error()) {
            Err(SendCommandError::InvalidInstanceId(err)) => {
                let message = err.message().unwrap_or_default();
                ensure!(
                    message.contains(UNREGISTERED) && !message.contains(LINUX),
                    "{message}"
                );
            }
            other => bail!("SendCommand to {instances:?} should fail with InvalidInstanceId: {other:?}"),
        }
    }
    ensure!(
        aws.commands().await?.is_empty(),
        "a rejected SendCommand was recorded"
    );
    Ok(())
}

async fn throttled_send_command_is_retried() -> Result<()> {
    let (aws, client) = start().await?;
    aws.register_agent(LINUX, Platform::Linux, shell_runner()).await?;
    aws.inject_throttling("SendCommand", 2).await?;
    let command_id = send(&client, LINUX, "AWS-RunShellScript", &["echo retried"]).await?;
    ensure!(!command_id.is_empty(), "no command id");
    ensure!(
        aws.throttled_count().await? == 2,
        "throttled {} times",
        aws.throttled_count().await?
    );
    let recorded = aws.commands().await?;
    ensure!(
        recorded.len() == 1 && recorded[0].command_id == command_id,
        "{recorded:?}"
    );

    // Exhausting the standard retry mode's three attempts surfaces the throttling error.
    aws.inject_throttling("*", 3).await?;
    let err = match client.describe_instance_information().send().await {
        Ok(answer) => bail!("expected throttling, got {answer:?}"),
        Err(err) => err.into_service_error(),
    };
    ensure!(err.code() == Some("ThrottlingException"), "{err:?}");
    ensure!(
        aws.throttled_count().await? == 5,
        "throttled {} times",
        aws.throttled_count().await?
    );
    Ok(())
}

async fn rejects_51_instances() -> Result<()> {
    let (aws, client) = start().await?;
    let ids: Vec<String> = (0..51).map(|i| format!("i-{i:017x}")).collect();
    for id in &ids {
        aws.register_agent(id, Platform::Linux, None).await?;
    }
    let result = client
        .send_command()
        .set_instance_ids(Some(ids.clone()))
        .document_name("AWS-RunShellScript")
        .parameters("commands", vec!["true".to_owned()])
        .send()
        .await;
    match result {
        Err(err) => {
            let err = err.into_service_error();
            ensure!(err.code() == Some("ValidationException"), "{err:?}");
        }
        Ok(answer) => bail!("SendCommand to 51 instances should fail: {answer:?}"),
    }
    let fifty = client
        .send_command()
        .set_instance_ids(Some(ids[..50].to_vec()))
        .document_name("AWS-RunShellScript")
        .parameters("commands", vec!["true".to_owned()])
        .send()
        .await?;
    ensure!(
        fifty.command().map(|c| c.instance_ids().len()) == Some(50),
        "{fifty:?}"
    );
    Ok(())
}
