//! [`Fleet`] on the AWS SDK: the operator's own credentials (the SDK's default chain, endpoint
//! overrides from `AWS_ENDPOINT_URL*` included) assume each account's role with STS; the SDK's
//! AssumeRoleProvider caches those credentials and refreshes them before they expire. Credentials for
//! users ([`Fleet::assume_scoped`]) are separate: a fresh AssumeRole with the operator's own
//! credentials and a session policy each time, never cached and never used by the operator itself.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

use aws_config::{Region, SdkConfig, retry::RetryConfig, sts::AssumeRoleProvider, timeout::TimeoutConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_ssm::{
    error::ProvideErrorMetadata,
    types::{InstanceInformationStringFilter, PlatformType},
};
use passport_crds::access_request::Platform;

use passport_core::{account::Account, credentials::SessionCredentials, lifecycle::Invocation};

use super::{AwsError, Ec2Instance, Fleet, RunCommand, ScopedSession};

/// How long a check of an account's session documents holds: someone with the rights in the account
/// may edit them, and credentials may start only these documents.
const DOCUMENTS_RECHECK: Duration = Duration::from_secs(60);
/// Attempts per AWS call (the first try plus retries with the SDK's exponential backoff).
const MAX_ATTEMPTS: u32 = 4;
/// The first wait after SSM throttled a SendCommand, doubled with each further attempt.
const THROTTLE_BACKOFF: Duration = Duration::from_millis(200);
/// How long a provisioning or revoke script may run on an instance.
const SCRIPT_TIMEOUT_SECONDS: &str = "300";
/// SSM's delivery timeout (its minimum): see `passport_core::lifecycle::UNCONFIRMED_GRACE`.
const DELIVERY_TIMEOUT_SECONDS: i32 = 30;

#[derive(Debug)]
pub struct SdkFleet {
    base: SdkConfig,
    clients: Mutex<HashMap<Account, Clients>>,
    /// When this process last found each account's session documents as passport wrote them.
    documents_checked: Mutex<HashMap<Account, Instant>>,
}

#[derive(Debug, Clone)]
struct Clients {
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
    sts: aws_sdk_sts::Client,
    /// STS with the operator's own (base) credentials, in the account's region: for scoped sessions.
    base_sts: aws_sdk_sts::Client,
}

impl SdkFleet {
    /// Loads the operator's own AWS configuration from the environment.
    pub async fn from_env() -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(20))
            .operation_timeout(Duration::from_secs(60))
            .build();
        let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(timeouts)
            .load()
            .await;
        Self {
            base,
            clients: Mutex::new(HashMap::new()),
            documents_checked: Mutex::new(HashMap::new()),
        }
    }

    async fn clients(&self, account: &Account) -> Clients {
        if let Some(clients) = self.lock().get(account) {
            return clients.clone();
        }
        let region = Region::new(account.region.clone());
        let mut role = AssumeRoleProvider::builder(account.role_arn.clone())
            .session_name("passport-operator")
            .session_length(Duration::from_secs(3600))
            .region(region.clone())
            .configure(&self.base);
        if let Some(external_id) = &account.external_id {
            role = role.external_id(external_id.clone());
        }
        let credentials = SharedCredentialsProvider::new(role.build().await);
        let config = self
            .base
            .to_builder()
            .region(region.clone())
            .credentials_provider(credentials)
            .build();
        let base_config = self.base.to_builder().region(region).build();
        let clients = Clients {
            ec2: aws_sdk_ec2::Client::new(&config),
            ssm: aws_sdk_ssm::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
            base_sts: aws_sdk_sts::Client::new(&base_config),
        };
        self.lock().entry(account.clone()).or_insert(clients).clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Account, Clients>> {
        self.clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Fleet for SdkFleet {
    async fn managed_instances(
        &self,
        account: &Account,
        instance_ids: &[String],
    ) -> Result<BTreeMap<String, Option<Platform>>, AwsError> {
        let ssm = self.clients(account).await.ssm;
        let mut found: BTreeMap<String, Option<Platform>> =
            instance_ids.iter().map(|id| (id.clone(), None)).collect();
        let filter = InstanceInformationStringFilter::builder()
            .key("InstanceIds")
            .set_values(Some(instance_ids.to_vec()))
            .build()
            .map_err(|err| AwsError::Other(err.to_string()))?;
        let mut pages = ssm
            .describe_instance_information()
            .filters(filter)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(classify)?;
            for info in page.instance_information_list() {
                let online = info.ping_status().is_some_and(|s| s.as_str() == "Online");
                if let (Some(id), true) = (info.instance_id(), online) {
                    let platform = match info.platform_type() {
                        Some(PlatformType::Windows) => Platform::Windows,
                        _ => Platform::Linux,
                    };
                    found.insert(id.to_owned(), Some(platform));
                }
            }
        }
        Ok(found)
    }

    async fn describe_instances(
        &self,
        account: &Account,
        instance_ids: &[String],
    ) -> Result<BTreeMap<String, Ec2Instance>, AwsError> {
        let ec2 = self.clients(account).await.ec2;
        // A filter, not InstanceIds: one unknown id would fail the whole call (InvalidInstanceID.NotFound).
        let filter = aws_sdk_ec2::types::Filter::builder()
            .name("instance-id")
            .set_values(Some(instance_ids.to_vec()))
            .build();
        let mut pages = ec2.describe_instances().filters(filter).into_paginator().send();
        let mut found = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(classify)?;
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = instance.instance_id() else {
                    continue;
                };
                let state = instance
                    .state()
                    .and_then(|s| s.name())
                    .map(|name| name.as_str().to_owned())
                    .unwrap_or_default();
                let tags = instance
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
                    .collect();
                found.insert(id.to_owned(), Ec2Instance { state, tags });
            }
        }
        Ok(found)
    }

    async fn find_command(
        &self,
        account: &Account,
        instance_id: &str,
        comment: &str,
    ) -> Result<Option<String>, AwsError> {
        let ssm = self.clients(account).await.ssm;
        let mut pages = ssm
            .list_commands()
            .instance_id(instance_id)
            .into_paginator()
            .send();
        let mut newest: Option<(aws_smithy_types::DateTime, String)> = None;
        while let Some(page) = pages.next().await {
            for command in page.map_err(classify)?.commands() {
                let (Some(id), Some(at)) = (command.command_id(), command.requested_date_time()) else {
                    continue;
                };
                let later = newest.as_ref().is_none_or(|(seen, _)| at > seen);
                if command.comment() == Some(comment) && later {
                    newest = Some((*at, id.to_owned()));
                }
            }
        }
        Ok(newest.map(|(_, id)| id))
    }

    async fn send_command(&self, account: &Account, command: RunCommand<'_>) -> Result<String, AwsError> {
        let ssm = self.clients(account).await.ssm;
        let document = match command.platform {
            Platform::Linux => "AWS-RunShellScript",
            Platform::Windows => "AWS-RunPowerShellScript",
        };
        // SendCommand is not idempotent: a retry after a lost answer would run the script twice, and
        // the second command would be recorded nowhere. So the SDK never retries it; passport retries
        // only what SSM refused outright (throttling), and a lost answer becomes an unconfirmed,
        // recorded attempt that the lifecycle follows up.
        let mut attempt = 1;
        let output = loop {
            let sent = ssm
                .send_command()
                .document_name(document)
                .set_instance_ids(Some(command.instance_ids.to_vec()))
                .comment(command.comment.chars().take(100).collect::<String>())
                .parameters("commands", vec![command.script.to_owned()])
                .parameters("executionTimeout", vec![SCRIPT_TIMEOUT_SECONDS.to_owned()])
                // An instance that is off or lost its agent fails the command after this instead of
                // holding it for hours; passport retries revocations with backoff.
                .timeout_seconds(DELIVERY_TIMEOUT_SECONDS)
                .customize()
                .config_override(
                    aws_sdk_ssm::config::Builder::default().retry_config(RetryConfig::disabled()),
                )
                .send()
                .await;
            match sent.map_err(classify) {
                Err(AwsError::Throttled(_)) if attempt < MAX_ATTEMPTS => {
                    tokio::time::sleep(THROTTLE_BACKOFF * 2u32.pow(attempt - 1)).await;
                    attempt += 1;
                }
                other => break other?,
            }
        };
        output
            .command()
            .and_then(|c| c.command_id())
            .map(str::to_owned)
            .ok_or_else(|| AwsError::Other("SendCommand answered without a command id".into()))
    }

    async fn invocations(
        &self,
        account: &Account,
        command_id: &str,
        instance_ids: &[String],
        output: bool,
    ) -> Result<BTreeMap<String, Result<Invocation, AwsError>>, AwsError> {
        let ssm = self.clients(account).await.ssm;
        super::invocations::follow(&ssm, command_id, instance_ids, output).await
    }

    async fn verify(&self, account: &Account) -> Result<String, AwsError> {
        let sts = self.clients(account).await.sts;
        let identity = sts.get_caller_identity().send().await.map_err(classify)?;
        Ok(identity.arn().unwrap_or_default().to_owned())
    }

    async fn ensure_session_documents(&self, account: &Account) -> Result<(), AwsError> {
        let checked = |map: &Mutex<HashMap<Account, Instant>>| {
            map.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(account)
                .is_some_and(|at| at.elapsed() < DOCUMENTS_RECHECK)
        };
        if checked(&self.documents_checked) {
            return Ok(());
        }
        super::sessions::ensure_documents(&self.clients(account).await.ssm).await?;
        self.documents_checked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(account.clone(), Instant::now());
        Ok(())
    }

    async fn terminate_sessions(
        &self,
        account: &Account,
        instance_ids: &[String],
        session_prefix: &str,
    ) -> Result<Vec<String>, AwsError> {
        let ssm = self.clients(account).await.ssm;
        // `arn:…:iam::<account>:role/<path>/<name>`: sessions name the role by its last segment.
        let role_name = account.role_arn.rsplit('/').next().unwrap_or_default();
        super::sessions::terminate_sessions(&ssm, instance_ids, role_name, session_prefix).await
    }

    async fn assume_scoped(
        &self,
        account: &Account,
        session: ScopedSession<'_>,
    ) -> Result<SessionCredentials, AwsError> {
        let sts = self.clients(account).await.base_sts;
        let duration = i32::try_from(session.duration.as_secs()).unwrap_or(i32::MAX);
        let output = sts
            .assume_role()
            .role_arn(&account.role_arn)
            .role_session_name(session.session_name)
            .set_external_id(account.external_id.clone())
            .policy(session.policy)
            .duration_seconds(duration)
            .send()
            .await
            .map_err(classify)?;
        let missing = || AwsError::Other("AssumeRole answered without credentials".into());
        let credentials = output.credentials().ok_or_else(missing)?;
        let expiration = jiff::Timestamp::from_second(credentials.expiration().secs())
            .map_err(|err| AwsError::Other(format!("AssumeRole answered an unusable expiration: {err}")))?;
        Ok(SessionCredentials {
            access_key_id: credentials.access_key_id().to_owned(),
            secret_access_key: credentials.secret_access_key().to_owned(),
            session_token: credentials.session_token().to_owned(),
            expiration,
        })
    }
}

/// Sorts an SDK error into what the lifecycle needs to know, keeping AWS's own words.
pub(super) fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    err: aws_sdk_ssm::error::SdkError<E>,
) -> AwsError {
    let code = err.code().unwrap_or_default().to_owned();
    let text = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
    };
    match code.as_str() {
        "InvalidInstanceId" => AwsError::InvalidInstance(text),
        "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "RequestLimitExceeded" => {
            AwsError::Throttled(format!("{text} (after {MAX_ATTEMPTS} attempts)"))
        }
        _ => AwsError::Other(text),
    }
}
