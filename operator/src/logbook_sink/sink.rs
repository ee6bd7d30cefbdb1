//! Where records go: an HTTP(S) endpoint taking structured CloudEvents, and/or stdout.

use std::{io::Write, path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use rustls::pki_types::{CertificateDer, pem::PemObject};
use tokio::sync::Mutex;

use super::event;

/// How long one POST may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The key of the auth Secret holding the Authorization header's value.
pub const AUTH_KEY: &str = "authorization";

/// Why a delivery failed: the `reason` label of `passport_logbook_delivery_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum Failure {
    /// No connection (refused, reset, TLS).
    Connect,
    Timeout,
    /// The sink answered 4xx (401/403 also re-read the auth Secret).
    #[strum(serialize = "http_4xx")]
    Http4xx,
    #[strum(serialize = "http_5xx")]
    Http5xx,
    /// Another non-2xx answer.
    HttpOther,
    /// The auth Secret could not be read.
    AuthSecret,
    /// The event could not be built, or its delivery task died (never expected).
    Build,
    /// Stdout could not be written (stdout-only mode).
    Stdout,
    /// The sink took the records but `status.logbook.delivered` could not be advanced.
    StatusWrite,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The sink as a whole is unwell (not this request): when it takes an event again, every
    /// request waiting on such a failure retries at once.
    pub fn sink_wide(self) -> bool {
        matches!(
            self,
            Self::Connect | Self::Timeout | Self::Http5xx | Self::AuthSecret
        )
    }
}

/// The HTTP sink: a client with the configured trust, and the auth header read from its Secret.
#[derive(Debug)]
pub struct HttpSink {
    url: reqwest::Url,
    client: reqwest::Client,
    auth: Option<AuthSource>,
}

#[derive(Debug)]
struct AuthSource {
    secrets: Api<Secret>,
    name: String,
    /// Read lazily, again after a 401/403 (a rotated Secret).
    cached: Mutex<Option<HeaderValue>>,
}

impl HttpSink {
    /// `ca`: a PEM bundle to trust instead of the system's roots (https only).
    pub fn new(
        url: reqwest::Url,
        ca: Option<&Path>,
        auth: Option<(Api<Secret>, String)>,
    ) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        match ca {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .with_context(|| format!("reading the Logbook sink CA bundle {}", path.display()))?
                    .collect::<Result<Vec<_>, _>>()
                    .with_context(|| format!("parsing the Logbook sink CA bundle {}", path.display()))?;
                anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
                for cert in certs {
                    roots
                        .add(cert)
                        .context("a certificate of the Logbook sink CA bundle")?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS configuration")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("passport-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("the Logbook sink's HTTP client")?;
        Ok(Self {
            url,
            client,
            auth: auth.map(|(secrets, name)| AuthSource {
                secrets,
                name,
                cached: Mutex::new(None),
            }),
        })
    }

    /// POSTs one structured CloudEvent; Ok on a 2xx answer.
    pub async fn send(&self, body: &str) -> Result<(), Failure> {
        let mut post = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, event::CONTENT_TYPE)
            .body(body.to_owned());
        if let Some(auth) = &self.auth {
            post = post.header(AUTHORIZATION, auth.header().await?);
        }
        let response = post.send().await.map_err(|err| {
            tracing::debug!(error = %err, "Logbook sink unreachable");
            if err.is_timeout() {
                Failure::Timeout
            } else {
                Failure::Connect
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        tracing::debug!(%status, "Logbook sink refused a record");
        if let (Some(auth), 401 | 403) = (&self.auth, status.as_u16()) {
            *auth.cached.lock().await = None;
        }
        Err(match status.as_u16() {
            400..=499 => Failure::Http4xx,
            500..=599 => Failure::Http5xx,
            _ => Failure::HttpOther,
        })
    }
}

impl AuthSource {
    async fn header(&self) -> Result<HeaderValue, Failure> {
        let mut cached = self.cached.lock().await;
        if let Some(value) = cached.as_ref() {
            return Ok(value.clone());
        }
        let secret = self.secrets.get(&self.name).await.map_err(|err| {
            tracing::warn!(secret = %self.name, error = %err, "cannot read the Logbook sink's auth Secret");
            Failure::AuthSecret
        })?;
        let bytes = secret
            .data
            .as_ref()
            .and_then(|data| data.get(AUTH_KEY))
            .map(|value| value.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|data| data.get(AUTH_KEY))
                    .map(|value| value.clone().into_bytes())
            });
        let Some(bytes) = bytes else {
            tracing::warn!(secret = %self.name, "the Logbook sink's auth Secret has no `{AUTH_KEY}` key");
            return Err(Failure::AuthSecret);
        };
        let trimmed = String::from_utf8_lossy(&bytes).trim().to_owned();
        let mut value = HeaderValue::from_str(&trimmed).map_err(|_| {
            tracing::warn!(secret = %self.name, "the Logbook sink's auth Secret holds no valid header value");
            Failure::AuthSecret
        })?;
        value.set_sensitive(true);
        *cached = Some(value.clone());
        Ok(value)
    }
}

/// Prints one record as a JSON line on stdout (flushed, so a log shipper sees it at once).
pub fn print(line: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(line.as_bytes())?;
    stdout.write_all(b"\n")?;
    stdout.flush()
}
