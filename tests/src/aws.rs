//! AWS for the end-to-end suite: moto's server (a third-party AWS emulator speaking the real wire
//! protocol), extended in-process by `tests/aws/passport_moto.py` with what passport needs from SSM Run
//! Command: DescribeInstanceInformation, SSM agents that really run the scripts sent to their
//! instance, throttling injection, and a record of every SendCommand and AssumeRole. Tests reach moto
//! through the SDK's endpoint override and steer it through the launcher's admin API.

use std::{collections::BTreeMap, path::Path, process::Stdio, time::Duration};

use anyhow::{Context, Result, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig};
use aws_sdk_ssm::config::{Credentials, SharedCredentialsProvider};
use serde_json::{Value, json};

use local_controlplane::process::{Keeper, checked_output, guarded, spawn_kept};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

const MOTO: &str = "moto[server]==5.2.1";
/// The WebSocket server of the Session Manager data channel (tests/aws/ssm_gateway.py).
const WEBSOCKETS: &str = "websockets==15.0.1";
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Region and static credentials moto is called with; any pass its signature check.
pub const REGION: &str = "us-east-1";
pub const ACCESS_KEY: &str = "testing";

/// What an SSM agent reports as its `PlatformType`; it decides which document the agent runs
/// (AWS-RunShellScript or AWS-RunPowerShellScript).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Linux,
    Windows,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Linux => "Linux",
            Platform::Windows => "Windows",
        }
    }
}

/// One SendCommand moto accepted, as the operator sent it, with each invocation's current state.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCommand {
    pub command_id: String,
    pub account_id: String,
    pub region: String,
    pub instance_ids: Vec<String>,
    pub document_name: String,
    pub comment: String,
    /// The document parameters, e.g. `commands` (the script's lines) and `executionTimeout`.
    pub parameters: BTreeMap<String, Vec<String>>,
    pub timeout_seconds: i64,
    /// When moto accepted it (RFC 3339, millisecond precision).
    pub requested_date_time: String,
    /// Pending, InProgress, Success or Failed.
    pub status: String,
    pub invocations: Vec<RecordedInvocation>,
}

impl RecordedCommand {
    /// Whether the operator sent it to grant access (its comment is `passport grant <uid> <ns/name>`).
    pub fn is_provisioning(&self) -> bool {
        self.comment.starts_with("passport grant ")
    }

    /// Whether it is the operator's `verb` (`grant` or `revoke`) for request `key` (`namespace/name`).
    pub fn is_for(&self, verb: &str, key: &str) -> bool {
        self.comment.starts_with(&format!("passport {verb} ")) && self.comment.ends_with(&format!(" {key}"))
    }

    /// The value of a quoted top-level assignment in the script (`PASSPORT_HOLDER='<uid>'`).
    pub fn assignment(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.script().lines().find_map(|line| {
            let value = line.strip_prefix(&prefix)?;
            Some(value.trim_matches('\'').replace("'\\''", "'"))
        })
    }

    /// The script the agent runs: the `commands` parameter joined by newlines.
    pub fn script(&self) -> String {
        self.parameters
            .get("commands")
            .map(|lines| lines.join("\n"))
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordedInvocation {
    pub instance_id: String,
    pub status: String,
    pub status_details: String,
    /// The script's exit code; -1 until it has finished.
    pub response_code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// The running emulator. Dropping it stops the process (its stdin closes, then it is killed).
#[derive(Debug)]
pub struct AwsEmulator {
    endpoint: String,
    admin: String,
    /// The Session Manager data channel's `ws://` base (StartSession's StreamUrl points into it).
    gateway: String,
    log: tempfile::NamedTempFile,
    /// Held open: the launcher exits when it closes.
    stdin: Option<std::process::ChildStdin>,
    child: std::process::Child,
    _keeper: Keeper,
}

impl AwsEmulator {
    /// Installs moto if this machine lacks it, then starts the launcher on free loopback ports.
    pub async fn start() -> Result<Self> {
        ensure_moto().await?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("aws/passport_moto.py");
        let log = tempfile::Builder::new()
            .prefix("passport-moto-")
            .suffix(".log")
            .tempfile()?;
        let mut command = guarded("python3");
        command
            .arg(&script)
            .args(["--port", "0", "--admin-port", "0"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(log.reopen()?);
        let (mut child, keeper) = spawn_kept(command)?;
        let stdin = child.stdin.take();
        let stdout = tokio::process::ChildStdout::from_std(child.stdout.take().context("launcher stdout")?)?;
        let mut line = String::new();
        let read = tokio::time::timeout(START_TIMEOUT, BufReader::new(stdout).read_line(&mut line)).await;
        let ready: Value = match read {
            Ok(Ok(n)) if n > 0 => {
                serde_json::from_str(&line).with_context(|| format!("ready line {line:?}"))?
            }
            _ => bail!(
                "{} did not start; its log:\n{}",
                script.display(),
                tail(log.path())
            ),
        };
        let field = |name: &str| {
            ready[name]
                .as_str()
                .map(str::to_owned)
                .context("ready line lacks a field")
        };
        Ok(Self {
            endpoint: field("endpoint")?,
            admin: field("admin")?,
            gateway: field("gateway")?,
            log,
            stdin,
            child,
            _keeper: keeper,
        })
    }

    /// moto's URL, for the SDK's endpoint override (`AWS_ENDPOINT_URL`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The Session Manager data channel's `ws://127.0.0.1:PORT`.
    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    /// The launcher's log (moto's request log, agents, admin calls), for failure messages.
    pub fn log(&self) -> String {
        tail(self.log.path())
    }

    /// Environment for a process that should use this emulator through the SDK's standard settings.
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", ACCESS_KEY.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }

    /// An SDK configuration that calls moto with static test credentials and the standard retry mode.
    pub fn sdk_config(&self) -> SdkConfig {
        let credentials = Credentials::new(ACCESS_KEY, ACCESS_KEY, None, None, "passport-tests");
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .retry_config(RetryConfig::standard())
            .build()
    }

    /// Brings an SSM agent online for `instance_id` (in every region). With a runner it runs each
    /// command's script as `runner... <script file>`; without one, commands stay InProgress.
    pub async fn register_agent(
        &self,
        instance_id: &str,
        platform: Platform,
        runner: Option<Vec<String>>,
    ) -> Result<()> {
        let body = json!({ "instanceId": instance_id, "platform": platform.as_str(), "runner": runner });
        self.admin("POST", "/agents", Some(body)).await.map(drop)
    }

    /// Takes the instance's agent offline: it is no longer listed, and SendCommand to it fails.
    pub async fn remove_agent(&self, instance_id: &str) -> Result<()> {
        self.admin("DELETE", &format!("/agents/{instance_id}"), None)
            .await
            .map(drop)
    }

    /// Keeps the instance's agent listed Online (DescribeInstanceInformation) while SendCommand
    /// refuses it with InvalidInstanceId, as AWS does for an agent that lost its connection.
    pub async fn refuse_commands(&self, instance_id: &str) -> Result<()> {
        self.admin("POST", &format!("/agents/{instance_id}/refuse"), None)
            .await
            .map(drop)
    }

    /// Arms a crash: the `nth` SendCommand from now whose comment contains `comment_contains` (any
    /// when empty) makes the emulator SIGKILL the process whose pid `pid_file` holds at that moment,
    /// right after recording the command and before answering, so the caller dies between sending a
    /// command and learning its id. Returns the hook's id.
    pub async fn kill_after_send(&self, pid_file: &Path, nth: u32, comment_contains: &str) -> Result<u64> {
        let body = json!({
            "pidFile": pid_file.to_string_lossy(),
            "nth": nth,
            "commentContains": comment_contains,
        });
        let hook = self.admin("POST", "/kill-after-send", Some(body)).await?;
        hook["id"].as_u64().context("kill hook without an id")
    }

    /// The id of the command that fired kill hook `id`, once it has fired.
    pub async fn kill_hook_fired(&self, id: u64) -> Result<Option<String>> {
        let hooks = self.admin("GET", "/kill-after-send", None).await?;
        let hook = hooks
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| h["id"].as_u64() == Some(id))
            .with_context(|| format!("no kill hook {id}"))?;
        if let Some(error) = hook["error"].as_str() {
            bail!("kill hook {id} could not kill pid {}: {error}", hook["pid"]);
        }
        Ok(hook["fired"]
            .as_bool()
            .unwrap_or_default()
            .then(|| hook["commandId"].as_str().unwrap_or_default().to_owned()))
    }

    /// Every SendCommand moto accepted, oldest first.
    pub async fn commands(&self) -> Result<Vec<RecordedCommand>> {
        let answer = self.admin("GET", "/commands", None).await?;
        answer
            .as_array()
            .context("/commands is not a list")?
            .iter()
            .map(recorded_command)
            .collect()
    }

    /// The next `count` calls of `operation` (e.g. "SendCommand", "AssumeRole", or "*" for any SSM
    /// or STS operation) answer with a throttling error.
    pub async fn inject_throttling(&self, operation: &str, count: u32) -> Result<()> {
        let body = json!({ "operation": operation, "count": count });
        self.admin("POST", "/faults", Some(body)).await.map(drop)
    }

    /// How many throttling errors have been answered so far.
    pub async fn throttled_count(&self) -> Result<u64> {
        let faults = self.admin("GET", "/faults", None).await?;
        faults["servedTotal"]
            .as_u64()
            .context("/faults lacks servedTotal")
    }

    /// Every AssumeRole call: RoleArn, RoleSessionName, ExternalId, Policy, DurationSeconds, PolicyArns,
    /// Tags, SourceIdentity as sent, plus CallerAccount, AccessKeyId and AssumedRoleArn.
    pub async fn assumed_roles(&self) -> Result<Vec<Value>> {
        let answer = self.admin("GET", "/assumed-roles", None).await?;
        answer.as_array().cloned().context("/assumed-roles is not a list")
    }

    /// Forgets agents, records and faults, and resets moto's backends.
    pub async fn reset(&self) -> Result<()> {
        self.admin("POST", "/reset", None).await.map(drop)
    }

    pub(crate) async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let address = self.admin.trim_start_matches("http://");
        crate::json_api::call("the moto admin API", address, method, path, body).await
    }
}

impl Drop for AwsEmulator {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn ensure_moto() -> Result<()> {
    ensure_python_module("moto.server", MOTO).await?;
    ensure_python_module("websockets", WEBSOCKETS).await
}

/// Installs `requirement` with pip unless `module` imports already.
async fn ensure_python_module(module: &str, requirement: &str) -> Result<()> {
    let import = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .await?;
    if import.status.success() {
        return Ok(());
    }
    let mut install = Command::new("python3");
    install
        .args(["-m", "pip", "install", "--quiet", requirement])
        .stdin(Stdio::null());
    checked_output(&mut install, &format!("pip install {requirement}"))
        .await
        .map(drop)
}

fn recorded_command(value: &Value) -> Result<RecordedCommand> {
    let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let parameters = value["parameters"].as_object().into_iter().flatten();
    let invocations = value["invocations"]
        .as_array()
        .context("command lacks invocations")?;
    Ok(RecordedCommand {
        command_id: text(value, "commandId"),
        account_id: text(value, "accountId"),
        region: text(value, "region"),
        instance_ids: strings(&value["instanceIds"]),
        document_name: text(value, "documentName"),
        comment: text(value, "comment"),
        parameters: parameters
            .map(|(name, values)| (name.clone(), strings(values)))
            .collect(),
        timeout_seconds: value["timeoutSeconds"].as_i64().unwrap_or_default(),
        requested_date_time: text(value, "requestedDateTime"),
        status: text(value, "status"),
        invocations: invocations
            .iter()
            .map(|i| RecordedInvocation {
                instance_id: text(i, "instanceId"),
                status: text(i, "status"),
                status_details: text(i, "statusDetails"),
                response_code: i["responseCode"].as_i64().unwrap_or(-1),
                stdout: text(i, "standardOutputContent"),
                stderr: text(i, "standardErrorContent"),
            })
            .collect(),
    })
}

/// The last lines of a log file.
fn tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
