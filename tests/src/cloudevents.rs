//! A third-party CloudEvents receiver for the Logbook sink's tests and the demo:
//! `tests/cloudevents/receiver.py`, a Python server on the PyPI `cloudevents` SDK. Every event it
//! takes is a JSON line `{"attributes": {...}, "data": ...}` in a file.

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use local_controlplane::process::{Keeper, guarded, spawn_kept};
use serde_json::Value;

/// The receiver (tests/cloudevents/receiver.py): every event it takes is a JSON line in `out`.
pub struct Receiver {
    port: u16,
    out: PathBuf,
    /// The Authorization header it insists on, if any.
    authorization: Option<String>,
    /// While it exists, the receiver answers every event with the status code it holds.
    status_file: PathBuf,
    /// With TLS: the CA bundle its certificate chains to (for `--logbook-sink-ca`).
    pub ca: Option<PathBuf>,
    process: Option<(Child, Keeper)>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// Plain HTTP, or with `tls` HTTPS on a certificate for 127.0.0.1 from a CA of its own.
    pub fn start(tls: bool, authorization: Option<&str>) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("passport-cloudevents-")
            .tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let ca = if tls {
            Some(make_certificates(dir.path())?)
        } else {
            None
        };
        let mut receiver = Self {
            port,
            out: dir.path().join("events.jsonl"),
            authorization: authorization.map(str::to_owned),
            status_file: dir.path().join("status"),
            ca,
            process: None,
            dir,
        };
        receiver.listen()?;
        Ok(receiver)
    }

    pub fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// (Re)starts the server on its port; returns once it accepts connections.
    pub fn listen(&mut self) -> Result<()> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("cloudevents/receiver.py");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.out.with_extension("log"))?;
        let mut command = guarded("python3");
        command
            .arg(script)
            .args(["--port", &self.port.to_string(), "--out"])
            .arg(&self.out)
            .arg("--status-file")
            .arg(&self.status_file)
            .arg("--refuse-file")
            .arg(self.refuse_file());
        if let Some(authorization) = &self.authorization {
            command.args(["--expect-authorization", authorization]);
        }
        if self.ca.is_some() {
            command
                .arg("--tls-cert")
                .arg(self.dir.path().join("server.pem"))
                .arg("--tls-key")
                .arg(self.dir.path().join("server.key"));
        }
        command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        self.process = Some(spawn_kept(command)?);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some((child, _)) = self.process.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("the receiver exited ({status}): {}", self.log());
            }
            ensure!(
                Instant::now() < deadline,
                "the receiver does not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Stops the server: the port refuses connections.
    pub fn stop(&mut self) {
        if let Some((mut child, _keeper)) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Makes it answer every event with `status` (503: an outage; 200: normal).
    pub fn answer(&self, status: u16) -> Result<()> {
        if status == 200 {
            match fs::remove_file(&self.status_file) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
                _ => {}
            }
        } else {
            fs::write(&self.status_file, status.to_string())?;
        }
        Ok(())
    }

    /// While it exists, events about these subjects (`namespace/name`) get 500.
    pub fn refuse_file(&self) -> PathBuf {
        self.dir.path().join("refuse")
    }

    pub fn refuse(&self, subjects: &[&str]) -> Result<()> {
        if subjects.is_empty() {
            match fs::remove_file(self.refuse_file()) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
                _ => {}
            }
        } else {
            fs::write(self.refuse_file(), subjects.join("\n"))?;
        }
        Ok(())
    }

    /// Every event received so far, in arrival order.
    pub fn events(&self) -> Result<Vec<Value>> {
        json_lines(&self.out)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.out.with_extension("log")).unwrap_or_default()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A CA and a server certificate for 127.0.0.1 in `dir` (ca.pem, server.pem, server.key), by the
/// openssl CLI; returns the CA bundle's path.
fn make_certificates(dir: &Path) -> Result<PathBuf> {
    let openssl = |args: &[&str]| -> Result<()> {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .context("running openssl")?;
        ensure!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    };
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )?;
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca = [
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=passport e2e logbook CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ];
    openssl(&[&["req", "-x509"][..], &key, &ca].concat())?;
    openssl(
        &[
            &["req"][..],
            &key,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "server.ext",
    ])?;
    Ok(dir.join("ca.pem"))
}

/// The JSON lines of a file (none if it does not exist yet).
pub fn json_lines(path: &Path) -> Result<Vec<Value>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err.into()),
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).with_context(|| format!("not a JSON line: {line}")))
        .collect()
}
