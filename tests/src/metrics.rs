//! The operator's `/metrics`, read over plain HTTP and parsed by a third-party Prometheus text
//! parser (`prometheus-parse`): a page that does not parse fails the test.

use anyhow::{Context, Result};
use prometheus_parse::{Scrape, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::operator::OperatorProcess;

/// Scrapes the operator once.
pub async fn scrape(operator: &OperatorProcess) -> Result<Scrape> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", operator.http_port())).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .context("no HTTP body")?;
    let lines = body.lines().map(|line| Ok(line.to_owned()));
    Scrape::parse(lines).context("/metrics is not Prometheus text")
}

/// The value of a counter or gauge, or a histogram's observation count, for the series named
/// `name` whose labels include every one of `labels`.
pub fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => 0.0,
        })
        .reduce(|a, b| a + b)
}
