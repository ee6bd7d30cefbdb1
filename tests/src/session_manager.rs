//! Session Manager for the tests: AWS's real `session-manager-plugin` (built from the Go module proxy
//! by `tests/session-manager-plugin/build.sh`) and the emulator's side of it (`moto_sessions.py`, and
//! the data-channel gateway `ssm_gateway.py`): agents that expose an instance's ports, the sessions
//! the emulator recorded, passport's two session documents as the API promises them, and the plugin
//! started the way the AWS CLI starts it.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
};

use anyhow::{Context, Result};
use aws_sdk_ssm::{Client, error::ProvideErrorMetadata, types::DocumentType};
use local_controlplane::binaries::cached_build;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::aws::{AwsEmulator, Platform, REGION};

/// passport's SSH document: the session's streams to port 22 (ssh's ProxyCommand).
pub const SSH_DOCUMENT: &str = "Passport-SSH";
/// passport's RDP document: a local port forwarded to 3389 (smux, as the agents' version asks).
pub const RDP_DOCUMENT: &str = "Passport-RDP";

/// The plugin's path: `PASSPORT_SSM_PLUGIN_BIN`, or what the cached build script reports (it builds
/// the plugin on first use).
pub fn plugin_binary() -> Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("session-manager-plugin/build.sh");
    cached_build("PASSPORT_SSM_PLUGIN_BIN", &script)
}

/// The directory holding the plugin, to put first on a CLI's PATH.
pub fn plugin_dir() -> Result<PathBuf> {
    Ok(plugin_binary()?
        .parent()
        .context("the plugin's path has no directory")?
        .to_path_buf())
}

/// One session the emulator recorded (`GET /sessions`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordedSession {
    pub session_id: String,
    pub target: String,
    pub document_name: String,
    /// The caller's ARN, e.g. `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION-NAME`.
    pub owner: String,
    /// Connecting, Connected or Terminated.
    pub status: String,
    pub reason: String,
    pub parameters: Value,
    /// The document's properties with the parameters substituted, as the plugin got them.
    pub properties: Value,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
    /// The callers of TerminateSession for it (the plugin calls it too when it exits).
    #[serde(default)]
    pub terminated_by: Vec<String>,
}

impl AwsEmulator {
    /// Brings an SSM agent online for `instance_id` whose instance's `ports` (e.g. 22, 3389) listen
    /// at the given addresses: Session Manager sessions to those ports reach them.
    pub async fn register_agent_with_ports(
        &self,
        instance_id: &str,
        platform: Platform,
        runner: Option<Vec<String>>,
        ports: &[(u16, SocketAddr)],
    ) -> Result<()> {
        let ports: BTreeMap<String, String> = ports
            .iter()
            .map(|(port, address)| (port.to_string(), address.to_string()))
            .collect();
        let body = json!({
            "instanceId": instance_id, "platform": platform.as_str(), "runner": runner, "ports": ports,
        });
        self.admin("POST", "/agents", Some(body)).await.map(drop)
    }

    /// Every Session Manager session, oldest first.
    pub async fn sessions(&self) -> Result<Vec<RecordedSession>> {
        let answer = self.admin("GET", "/sessions", None).await?;
        serde_json::from_value(answer).context("/sessions")
    }
}

/// The documents' content, as `CreateDocument` takes it (DocumentType Session, JSON).
pub fn document_content(name: &str) -> Value {
    if name == RDP_DOCUMENT {
        json!({
            "schemaVersion": "1.0",
            "description": "passport: RDP to port 3389 through a local port",
            "sessionType": "Port",
            "parameters": {"localPortNumber": {"type": "String", "default": "0", "description": "local port"}},
            "properties": {
                "portNumber": "3389", "type": "LocalPortForwarding", "localPortNumber": "{{ localPortNumber }}",
            },
        })
    } else {
        json!({
            "schemaVersion": "1.0",
            "description": "passport: SSH to port 22 over the session's streams",
            "sessionType": "Port",
            "parameters": {},
            "properties": {"portNumber": "22"},
        })
    }
}

/// Creates passport's two session documents in the account `client` calls, unless they exist.
pub async fn create_documents(client: &Client) -> Result<()> {
    for name in [SSH_DOCUMENT, RDP_DOCUMENT] {
        let created = client
            .create_document()
            .name(name)
            .document_type(DocumentType::Session)
            .document_format(aws_sdk_ssm::types::DocumentFormat::Json)
            .content(document_content(name).to_string())
            .send()
            .await;
        if let Err(err) = created
            && err.code() != Some("DocumentAlreadyExists")
        {
            return Err(err).context(format!("creating {name}"));
        }
    }
    Ok(())
}

/// A session the plugin carries.
#[derive(Debug)]
pub struct PluginSession {
    pub session_id: String,
    pub child: Child,
}

/// Starts a session on `target` with `document` through `client`, then the plugin for it the way the
/// AWS CLI does (`plugin <response> <region> StartSession <profile> <request> <endpoint>`), with
/// `env` (the credentials it signs the data channel and TerminateSession with). The plugin's stdin
/// and stdout are piped: they are the session's streams for a document without `type`.
pub async fn start_plugin(
    client: &Client,
    env: &[(&str, String)],
    endpoint: &str,
    target: &str,
    document: &str,
    parameters: &[(&str, String)],
) -> Result<PluginSession> {
    let mut start = client.start_session().target(target).document_name(document);
    for (name, value) in parameters {
        start = start.parameters(*name, vec![value.clone()]);
    }
    let started = start.send().await.context("StartSession")?;
    let session_id = started.session_id().context("no SessionId")?.to_owned();
    let response = json!({
        "SessionId": session_id, "TokenValue": started.token_value(), "StreamUrl": started.stream_url(),
    });
    let parameters: BTreeMap<&str, Vec<String>> = parameters
        .iter()
        .map(|(name, value)| (*name, vec![value.clone()]))
        .collect();
    let request = json!({"Target": target, "DocumentName": document, "Parameters": parameters});
    let child = Command::new(plugin_binary()?)
        .args([&response.to_string(), REGION, "StartSession", ""])
        .args([&request.to_string(), endpoint])
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting session-manager-plugin")?;
    Ok(PluginSession { session_id, child })
}
