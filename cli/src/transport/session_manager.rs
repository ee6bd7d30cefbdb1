//! The standard tunnel: a Session Manager session started with the scoped AWS credentials the
//! operator sealed for us, handed to AWS's `session-manager-plugin` the way the AWS CLI hands it
//! over (`session-manager-plugin <response> <region> StartSession <profile> <request> <endpoint>`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Result, anyhow, bail};
use aws_sdk_ssm::{
    config::{BehaviorVersion, Credentials, Region},
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
};
use passport_crds::sealed::AwsSession;
use serde_json::json;

use crate::workstation::{issued::Issued, key_dir::KeyDir, sealing};

pub const PLUGIN: &str = "session-manager-plugin";
/// The one port on the instance passport's SSH session document reaches.
pub const SSH_PORT: u16 = 22;

/// The one line when the plugin is missing.
fn missing_plugin() -> anyhow::Error {
    anyhow!(
        "{PLUGIN} is not on PATH: install AWS's Session Manager plugin \
         (https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html), \
         or reach the instance directly with --direct INSTANCE=HOST:PORT"
    )
}

/// The plugin's path on PATH.
pub fn find_plugin() -> Result<PathBuf> {
    find_on_path(PLUGIN, std::env::var_os("PATH").as_deref()).ok_or_else(missing_plugin)
}

fn find_on_path(program: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Which Session Manager document to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// SSH to the port on the instance (ssh's ProxyCommand).
    Ssh,
    /// Forward local port `local` to the port on the instance (RDP).
    PortForwarding { local: u16 },
}

/// Starts a session to `port` on `instance` with the sealed AWS session, and returns the plugin
/// command that carries it.
pub async fn open(
    keys: &KeyDir,
    issued: &Issued,
    instance: &str,
    port: u16,
    document: Document,
) -> Result<Command> {
    let tunnel = issued.tunnel.clone().ok_or_else(|| {
        anyhow!(
            "CredentialRequest {} carries no Session Manager parameters; reach the instance with --direct INSTANCE=HOST:PORT",
            issued.credential_request
        )
    })?;
    let creds = sealing::aws_session(keys, issued.sealed())?;
    // passport's session documents fix the port on the instance; only the local one is a parameter.
    let mut parameters = BTreeMap::new();
    let name = match document {
        Document::Ssh => {
            if port != SSH_PORT {
                bail!(
                    "passport's Session Manager document reaches SSH on port {SSH_PORT} only, not {port}; \
                     drop the port (ssh -p / Port) or reach the instance with --direct INSTANCE=HOST:PORT"
                );
            }
            tunnel.ssh_document
        }
        Document::PortForwarding { local } => {
            parameters.insert("localPortNumber".to_owned(), vec![local.to_string()]);
            tunnel.port_forwarding_document
        }
    };
    let target = SessionTarget {
        instance: instance.to_owned(),
        document: name,
        parameters,
        region: tunnel.region,
    };
    let started = start(&creds, &target).await?;
    Ok(plugin_command(&find_plugin()?, &started, &creds))
}

/// What to open: a document on an instance, with its parameters.
#[derive(Debug, Clone)]
struct SessionTarget {
    instance: String,
    document: String,
    parameters: BTreeMap<String, Vec<String>>,
    region: String,
}

/// A started session, ready for the plugin.
#[derive(Debug, Clone)]
struct Started {
    /// The StartSession response as the plugin reads it.
    response: String,
    /// The StartSession request as the plugin reads it.
    request: String,
    region: String,
    endpoint: String,
}

/// The SSM endpoint: `AWS_ENDPOINT_URL_SSM`, `AWS_ENDPOINT_URL`, else the region's public one.
fn endpoint(region: &str) -> String {
    ["AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| format!("https://ssm.{region}.amazonaws.com"))
}

/// The request JSON the plugin expects.
fn request_json(target: &SessionTarget) -> String {
    json!({
        "Target": target.instance,
        "DocumentName": target.document,
        "Parameters": target.parameters,
    })
    .to_string()
}

/// Calls StartSession with the sealed session's credentials.
async fn start(creds: &AwsSession, target: &SessionTarget) -> Result<Started> {
    let credentials = Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.clone(),
        Some(creds.session_token.clone()),
        None,
        "passport",
    );
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(target.region.clone()))
        .credentials_provider(credentials)
        .load()
        .await;
    let client = aws_sdk_ssm::Client::new(&config);
    let mut call = client
        .start_session()
        .target(&target.instance)
        .document_name(&target.document);
    for (name, values) in &target.parameters {
        call = call.parameters(name, values.clone());
    }
    let output = call.send().await.map_err(|err| {
        anyhow!(
            "Session Manager refused a session to {}: {}",
            target.instance,
            describe(&err, &endpoint(&target.region))
        )
    })?;
    let response = json!({
        "SessionId": output.session_id().unwrap_or_default(),
        "TokenValue": output.token_value().unwrap_or_default(),
        "StreamUrl": output.stream_url().unwrap_or_default(),
    })
    .to_string();
    Ok(Started {
        response,
        request: request_json(target),
        region: target.region.clone(),
        endpoint: endpoint(&target.region),
    })
}

/// An SDK failure in one short line: the service's code and message, or what went wrong on the way.
fn describe<E>(err: &SdkError<E, aws_sdk_ssm::config::http::HttpResponse>, endpoint: &str) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            match (inner.code(), inner.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_owned(),
                _ => DisplayErrorContext(inner).to_string(),
            }
        }
        SdkError::ResponseError(response) => format!(
            "unexpected HTTP {} answer from {endpoint}",
            response.raw().status().as_u16(),
        ),
        other => DisplayErrorContext(other).to_string(),
    }
}

/// The plugin invocation for a started session, with the scoped credentials in its environment.
fn plugin_command(plugin: &Path, started: &Started, creds: &AwsSession) -> Command {
    let mut command = Command::new(plugin);
    command
        .arg(&started.response)
        .arg(&started.region)
        .arg("StartSession")
        .arg("")
        .arg(&started.request)
        .arg(&started.endpoint)
        .env_remove("AWS_PROFILE")
        .env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key)
        .env("AWS_SESSION_TOKEN", &creds.session_token)
        .env("AWS_REGION", &started.region);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_json_is_what_the_plugin_reads() {
        let target = SessionTarget {
            instance: "i-0123456789abcdef0".into(),
            document: "Passport-RDP".into(),
            parameters: [("localPortNumber".to_owned(), vec!["53389".to_owned()])].into(),
            region: "eu-west-1".into(),
        };
        let value: serde_json::Value = serde_json::from_str(&request_json(&target)).expect("json");
        assert_eq!(
            value,
            json!({"Target": "i-0123456789abcdef0", "DocumentName": "Passport-RDP", "Parameters": {"localPortNumber": ["53389"]}})
        );
    }

    #[test]
    fn the_plugin_gets_the_aws_cli_argument_order() {
        let started = Started {
            response: "{\"SessionId\":\"s\"}".into(),
            request: "{}".into(),
            region: "eu-west-1".into(),
            endpoint: "https://ssm.eu-west-1.amazonaws.com".into(),
        };
        let creds = AwsSession {
            access_key_id: "ASIA".into(),
            secret_access_key: "secret".into(),
            session_token: "token".into(),
            expiration: "2030-01-01T00:00:00Z".into(),
            region: "eu-west-1".into(),
        };
        let command = plugin_command(Path::new("/usr/bin/session-manager-plugin"), &started, &creds);
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            vec![
                "{\"SessionId\":\"s\"}",
                "eu-west-1",
                "StartSession",
                "",
                "{}",
                "https://ssm.eu-west-1.amazonaws.com"
            ]
        );
        let envs: BTreeMap<String, Option<String>> = command
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert_eq!(envs.get("AWS_SESSION_TOKEN"), Some(&Some("token".to_owned())));
        assert_eq!(envs.get("AWS_PROFILE"), Some(&None));
    }

    #[test]
    fn missing_plugin_is_one_line_with_the_way_out() {
        assert_eq!(
            find_on_path(PLUGIN, Some(std::ffi::OsStr::new("/nonexistent"))),
            None
        );
        let line = missing_plugin().to_string();
        assert!(!line.contains('\n'));
        assert!(line.contains("--direct"), "{line}");
        assert!(find_on_path("sh", Some(std::ffi::OsStr::new("/usr/bin:/bin"))).is_some());
    }
}
