//! A minimal JSON-over-HTTP/1.1 client for the admin APIs of the servers the tests start (the AWS
//! emulator's, toxiproxy's): one exchange per connection, loopback only.

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// `method path` with an optional JSON `body` to `address` (`host:port`); the answer's JSON (null
/// when empty). `api` names the server in errors.
pub async fn call(api: &str, address: &str, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("connecting to {api}"))?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8(response)?;
    let (head, payload) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("malformed answer from {api}"))?;
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    let payload = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(payload)?
    } else {
        payload.to_owned()
    };
    if !status.starts_with('2') {
        bail!("{api} {method} {path} answered {status}: {payload}");
    }
    if payload.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&payload).with_context(|| format!("{api} {method} {path} answered {payload}"))
}

fn dechunk(mut body: &str) -> Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("malformed chunk")?;
        let size = usize::from_str_radix(size.trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        ensure!(rest.len() >= size, "truncated chunk");
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
}
