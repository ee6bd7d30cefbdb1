//! Network faults on real connections: Shopify's toxiproxy (built from its Go module into the control
//! plane's cache, see `tests/local-controlplane/build.sh`) as a child process on loopback. Each
//! [`Proxy`] is a TCP proxy in front of one server (the apiserver's TLS port, the AWS emulator), so a
//! client pointed at it sees whatever faults are set: added latency, connections reset, data
//! swallowed until the connection is closed, or the proxy down (connections refused).

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{Context, Result, ensure};
use local_controlplane::{
    binaries::with_binaries,
    eventually,
    process::{Keeper, guarded, spawn_kept},
};
use serde_json::{Value, json};

use crate::controlplane::binaries_dir;

/// Which way a toxic acts: on what the client sends (`Upstream`) or on what it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Upstream,
    Downstream,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// A fault on a proxy's connections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Every chunk is delayed by `latency` ± `jitter`.
    Latency { latency: Duration, jitter: Duration },
    /// Connections are reset (TCP RST) on their first data, or after `after` without data.
    ResetPeer { after: Duration },
    /// Data is swallowed; the connection is closed after `after`.
    Timeout { after: Duration },
}

impl Fault {
    fn kind(self) -> &'static str {
        match self {
            Fault::Latency { .. } => "latency",
            Fault::ResetPeer { .. } => "reset_peer",
            Fault::Timeout { .. } => "timeout",
        }
    }

    fn attributes(self) -> Value {
        let ms = |d: Duration| d.as_millis() as u64;
        match self {
            Fault::Latency { latency, jitter } => json!({ "latency": ms(latency), "jitter": ms(jitter) }),
            Fault::ResetPeer { after } => json!({ "timeout": ms(after) }),
            Fault::Timeout { after } => json!({ "timeout": ms(after) }),
        }
    }
}

/// The toxiproxy server. Dropping it kills the process (and with it every proxy).
#[derive(Debug)]
pub struct Toxiproxy {
    api: String,
    child: std::process::Child,
    _keeper: Keeper,
    _log: tempfile::NamedTempFile,
}

impl Toxiproxy {
    /// Starts toxiproxy's server with its API on a free loopback port (building it on first use).
    pub async fn start() -> Result<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("controlplane/build.sh");
        let bin =
            tokio::task::spawn_blocking(move || with_binaries(binaries_dir()?, &script, &["toxiproxy"]))
                .await??;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = tempfile::Builder::new()
            .prefix("passport-toxiproxy-")
            .suffix(".log")
            .tempfile()?;
        let mut command = guarded(bin.join("toxiproxy"));
        command
            // A fixed seed: which connections a partial fault hits is the same from run to run.
            .args(["-host", "127.0.0.1", "-port", &port.to_string(), "-seed", "7"])
            .stdin(Stdio::null())
            .stdout(log.reopen()?)
            .stderr(log.reopen()?);
        let (child, keeper) = spawn_kept(command)?;
        let proxy = Self {
            api: format!("127.0.0.1:{port}"),
            child,
            _keeper: keeper,
            _log: log,
        };
        eventually(Duration::from_secs(20), || proxy.call("GET", "/version", None)).await?;
        Ok(proxy)
    }

    /// A TCP proxy named `name` on a free loopback port, forwarding to `upstream` (`host:port`).
    pub async fn proxy(&self, name: &str, upstream: &str) -> Result<Proxy<'_>> {
        let body = json!({ "name": name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": true });
        let created = self.call("POST", "/proxies", Some(body)).await?;
        let listen = created["listen"]
            .as_str()
            .context("toxiproxy answered without a listen address")?
            .to_owned();
        ensure!(
            !listen.ends_with(":0"),
            "toxiproxy did not report its port: {created}"
        );
        Ok(Proxy {
            server: self,
            name: name.to_owned(),
            listen,
        })
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        crate::json_api::call("toxiproxy's API", &self.api, method, path, body).await
    }
}

impl Drop for Toxiproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One proxy of a [`Toxiproxy`]: connect to [`Proxy::listen`] instead of the upstream.
#[derive(Debug)]
pub struct Proxy<'a> {
    server: &'a Toxiproxy,
    name: String,
    listen: String,
}

impl Proxy<'_> {
    /// `127.0.0.1:PORT`, where clients connect.
    pub fn listen(&self) -> &str {
        &self.listen
    }

    /// Adds `fault` (named by its kind and direction, so one of each at a time) to a share
    /// `toxicity` (0.0 to 1.0) of new connections.
    pub async fn add(&self, fault: Fault, stream: Stream, toxicity: f32) -> Result<()> {
        let body = json!({
            "name": toxic_name(fault, stream),
            "type": fault.kind(),
            "stream": stream.as_str(),
            "toxicity": toxicity,
            "attributes": fault.attributes(),
        });
        let path = format!("/proxies/{}/toxics", self.name);
        self.server.call("POST", &path, Some(body)).await.map(drop)
    }

    /// Removes a fault added with [`Proxy::add`].
    pub async fn remove(&self, fault: Fault, stream: Stream) -> Result<()> {
        let path = format!("/proxies/{}/toxics/{}", self.name, toxic_name(fault, stream));
        self.server.call("DELETE", &path, None).await.map(drop)
    }

    /// Down: open connections are closed and new ones refused. Up: it listens again.
    pub async fn set_enabled(&self, enabled: bool) -> Result<()> {
        let path = format!("/proxies/{}", self.name);
        let body = json!({ "enabled": enabled });
        self.server.call("POST", &path, Some(body)).await.map(drop)
    }

    /// Removes every fault and brings the proxy up.
    pub async fn heal(&self) -> Result<()> {
        let path = format!("/proxies/{}/toxics", self.name);
        let toxics = self.server.call("GET", &path, None).await?;
        for toxic in toxics.as_array().into_iter().flatten() {
            if let Some(name) = toxic["name"].as_str() {
                let path = format!("/proxies/{}/toxics/{name}", self.name);
                self.server.call("DELETE", &path, None).await?;
            }
        }
        self.set_enabled(true).await
    }
}

fn toxic_name(fault: Fault, stream: Stream) -> String {
    format!("{}_{}", fault.kind(), stream.as_str())
}
