//! The command line: global flags, one subcommand per verb, and the value types clap parses for them
//! (Go durations, key types).

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum, builder::PossibleValue};
use passport_crds::{
    KeyType,
    duration::{format_go_duration, parse_go_duration},
};

use crate::{cluster::session::Selection, transport::direct::DirectEndpoint, ui::format::OutputFormat};

/// Just-in-time SSH and RDP access to EC2 instances, granted by the passport operator.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl-passport",
    bin_name = "kubectl passport",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("PASSPORT_GIT_COMMIT"), ")"),
    propagate_version = true,
    about = "Just-in-time SSH and RDP access to EC2 instances with passport",
    after_help = "Start with: kubectl passport request --instance i-0123456789abcdef0 --reason \"why\" --wait"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Verb,
}

/// Flags every verb takes, as kubectl spells them.
#[derive(Args, Debug, Clone, Default)]
pub struct Global {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace of the requests (default: the context's namespace).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

impl Global {
    /// The kubeconfig, context and namespace these flags choose.
    pub fn selection(&self) -> Selection<'_> {
        Selection {
            kubeconfig: self.kubeconfig.as_deref(),
            context: self.context.as_deref(),
            namespace: self.namespace.as_deref(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Verb {
    /// Ask for access to instances.
    Request(RequestArgs),
    /// List the AccessRequests in the namespace.
    List,
    /// Show one AccessRequest, with the state of each instance.
    Get(NameArg),
    /// Approve someone's AccessRequest (creates an AccessReview).
    Approve(ApproveArgs),
    /// Deny someone's AccessRequest (creates an AccessReview).
    Deny(DenyArgs),
    /// Make an AccessRequest last longer (never past 12h in all).
    Extend(ExtendArgs),
    /// End an AccessRequest now: access is revoked at once.
    Complete(NameArg),
    /// Open SSH to a Linux target, or print RDP details for a Windows target.
    Connect(ConnectArgs),
    /// Write an ssh config file for your Active requests and print its path.
    #[command(name = "ssh-config")]
    SshConfig(SshConfigArgs),
    /// What happened to an AccessRequest, in time order.
    Logbook(NameArg),
    /// Who the cluster says you are.
    Whoami,
    /// This plugin's version and the git commit it was built from.
    Version,
    /// Shell completion script.
    Completion(CompletionArgs),
    /// Check this machine, your kubeconfig, your rights and the operator; one line per check with
    /// the fix, exit 1 when something blocks use.
    Doctor(DoctorArgs),
    /// The tunnel ssh runs as its ProxyCommand (internal).
    #[command(hide = true)]
    Proxy(ProxyArgs),
}

#[derive(Args, Debug, Clone)]
pub struct NameArg {
    /// Name of the AccessRequest.
    pub name: String,
}

#[derive(Args, Debug, Clone)]
pub struct RequestArgs {
    /// Name of the new AccessRequest (default: <you>-<yyyymmdd-hhmmss>).
    pub name: Option<String>,
    /// EC2 instance to access (repeat for several).
    #[arg(long = "instance", value_name = "INSTANCE_ID", required = true)]
    pub instances: Vec<String>,
    /// Why you need access, for the reviewers and the logbook.
    #[arg(long)]
    pub reason: String,
    /// Incident or change ticket, e.g. INC-123.
    #[arg(long)]
    pub ticket: Option<String>,
    /// How long access lasts once active, e.g. 30m, 1h, 1h30m (1m to 12h).
    #[arg(long, default_value = "1h")]
    pub duration: GoDuration,
    /// AwsAccount the instances live in (default: the namespace's).
    #[arg(long)]
    pub account: Option<String>,
    /// Only allow tunnels from this CIDR (repeat for several).
    #[arg(long = "source-cidr", value_name = "CIDR")]
    pub source_cidrs: Vec<String>,
    /// Wait until the request is Active (or ends Denied or Failed), showing its progress.
    #[arg(long)]
    pub wait: bool,
    /// Create nothing: say which AccessPolicy applies, the duration, and whether the request would be
    /// auto-approved, refused, or need approvals (how many, from whom).
    #[arg(long, conflicts_with = "wait")]
    pub dry_run: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "5m")]
    pub timeout: GoDuration,
}

#[derive(Args, Debug, Clone)]
pub struct ApproveArgs {
    /// Name of the AccessRequest.
    pub name: String,
    /// Why you approve.
    #[arg(long)]
    pub comment: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct DenyArgs {
    /// Name of the AccessRequest.
    pub name: String,
    /// Why you deny (the requester sees it).
    #[arg(long)]
    pub comment: String,
}

#[derive(Args, Debug, Clone)]
pub struct ExtendArgs {
    /// Name of the AccessRequest.
    pub name: String,
    /// Add this much to the request's duration, e.g. 30m.
    #[arg(long, required_unless_present = "to", conflicts_with = "to")]
    pub by: Option<GoDuration>,
    /// Make the request's total duration this, e.g. 2h.
    #[arg(long)]
    pub to: Option<GoDuration>,
}

#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Name of the AccessRequest.
    pub name: String,
    /// Instance to connect to (required when the request has several).
    pub instance: Option<String>,
    #[command(flatten)]
    pub tunnel: TunnelArgs,
    /// Extra ssh arguments and the remote command, after `--`.
    #[arg(last = true, value_name = "SSH_ARGS")]
    pub ssh_args: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct SshConfigArgs {
    /// Only this AccessRequest (default: every Active request of yours in the namespace).
    pub name: Option<String>,
    /// Only this instance: checks that a request of yours reaches it now and that its credentials
    /// can be obtained, then writes its entry; else says why not.
    #[arg(long, value_name = "INSTANCE_ID")]
    pub instance: Option<String>,
    #[command(flatten)]
    pub tunnel: TunnelArgs,
}

/// How to reach instances: the key to certify, and optional direct endpoints instead of Session
/// Manager.
#[derive(Args, Debug, Clone, Default)]
pub struct TunnelArgs {
    /// Type of the SSH key to generate and have certified.
    #[arg(long, value_enum, default_value_t = KeyTypeArg(KeyType::Ed25519))]
    pub key_type: KeyTypeArg,
    /// Reach INSTANCE at HOST:PORT over plain TCP instead of Session Manager (repeatable; also
    /// PASSPORT_DIRECT_ENDPOINTS="i-a=HOST:PORT,i-b=HOST:PORT").
    #[arg(long, value_name = "INSTANCE=HOST:PORT")]
    pub direct: Vec<DirectEndpoint>,
}

#[derive(Args, Debug, Clone)]
pub struct ProxyArgs {
    /// Name of the AccessRequest.
    pub name: String,
    /// Instance id (ssh's %h).
    pub instance: String,
    /// Port on the instance (ssh's %p).
    pub port: u16,
    /// Only make sure the certificate is fresh, then exit without opening a tunnel (ssh runs
    /// this through `Match exec`, before it reads the certificate file).
    #[arg(long)]
    pub prepare: bool,
    #[command(flatten)]
    pub tunnel: TunnelArgs,
}

#[derive(Args, Debug, Clone)]
pub struct DoctorArgs {
    /// Namespace the passport operator runs in (where its leader Lease is).
    #[arg(long, default_value = "passport-system", value_name = "NAMESPACE")]
    pub operator_namespace: String,
}

#[derive(Args, Debug, Clone)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `--key-type`: passport's [`KeyType`] as clap reads it, by the names `spec.keyType` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyTypeArg(pub KeyType);

impl ValueEnum for KeyTypeArg {
    fn value_variants<'a>() -> &'a [Self] {
        &[KeyTypeArg(KeyType::Ed25519), KeyTypeArg(KeyType::Rsa)]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.as_str()))
    }
}

/// A duration in Go syntax (`30m`, `1h30m`), kept as typed and as a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoDuration {
    pub text: String,
    pub value: Duration,
}

impl FromStr for GoDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let value = parse_go_duration(text).map_err(|err| err.to_string())?;
        Ok(Self {
            text: text.to_owned(),
            value,
        })
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_go_duration(self.value))
    }
}

#[cfg(test)]
pub(crate) mod tests;
