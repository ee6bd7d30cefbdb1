//! EC2 instances in the emulator, through the real SDK: what passport asks EC2 about (is an instance
//! still there, what are its tags) needs instances EC2 knows. moto chooses their ids; the tests bind
//! such an id to an OpenSSH test instance by registering an SSM agent for it.

use anyhow::{Context, Result};
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

use crate::aws::AwsEmulator;

/// Any image id: moto launches from it without checking.
const IMAGE_ID: &str = "ami-12345678";

/// Launches one instance with these tags; returns its id.
pub async fn launch(emulator: &AwsEmulator, tags: &[(&str, &str)]) -> Result<String> {
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .set_tags(Some(
            tags.iter()
                .map(|(key, value)| Tag::builder().key(*key).value(*value).build())
                .collect(),
        ))
        .build();
    let launched = client(emulator)
        .run_instances()
        .image_id(IMAGE_ID)
        .min_count(1)
        .max_count(1)
        .tag_specifications(tags)
        .send()
        .await
        .context("RunInstances")?;
    launched
        .instances()
        .first()
        .and_then(|i| i.instance_id())
        .map(str::to_owned)
        .context("RunInstances returned no instance")
}

/// Terminates the instance, as EC2 reports it from then on.
pub async fn terminate(emulator: &AwsEmulator, instance_id: &str) -> Result<()> {
    client(emulator)
        .terminate_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .with_context(|| format!("TerminateInstances {instance_id}"))?;
    Ok(())
}

fn client(emulator: &AwsEmulator) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&emulator.sdk_config())
}
