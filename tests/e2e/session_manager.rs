//! Session Manager on real parts: AWS's own `session-manager-plugin` (built from the Go module proxy)
//! carries bytes through the emulator's data channel to a TCP service standing in for the instance's
//! port, byte-exact, in both of the plugin's modes — the session's standard streams (ssh's
//! ProxyCommand, passport's SSH document) and local port forwarding multiplexed with smux (passport's
//! RDP document, because the agents report a version above 3.0.196.0). TerminateSession closes the
//! tunnel, and the session policy of an assumed role decides which instances and documents a
//! session may use.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context, Result, bail, ensure};
use aws_sdk_ssm::{Client, error::ProvideErrorMetadata, types::SessionState};
use passport_tests::{
    aws::{AwsEmulator, Platform},
    session_manager::{PluginSession, RDP_DOCUMENT, SSH_DOCUMENT, create_documents, start_plugin},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

use crate::{E2e, alone};

const INSTANCE: &str = "i-05e55101a0000aaaa";
const OTHER_INSTANCE: &str = "i-05e55101a0000bbbb";
const MB: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(60);

pub fn trials() -> Vec<E2e> {
    vec![
        alone(
            "session_manager::plugin_carries_the_ssh_document_streams_byte_exact",
            standard_streams,
        ),
        alone(
            "session_manager::plugin_forwards_a_local_port_over_smux_byte_exact",
            port_forwarding,
        ),
        alone(
            "session_manager::target_closing_ends_the_session_with_channel_closed",
            target_closes,
        ),
        alone(
            "session_manager::session_policy_limits_instances_and_documents",
            session_policy,
        ),
    ]
}

/// The emulator, an SDK client with the tests' plain credentials, passport's documents, and an agent
/// whose instance's ports 22 and 3389 are `service`.
async fn setup(service: SocketAddr) -> Result<(AwsEmulator, Client)> {
    let aws = AwsEmulator::start().await?;
    let client = Client::new(&aws.sdk_config());
    create_documents(&client).await?;
    for instance in [INSTANCE, OTHER_INSTANCE] {
        aws.register_agent_with_ports(instance, Platform::Linux, None, &[(22, service), (3389, service)])
            .await?;
    }
    Ok((aws, client))
}

/// A TCP echo service: every connection gets back what it sends.
async fn echo_service() -> Result<SocketAddr> {
    serve(|mut stream| async move {
        let (mut reader, mut writer) = stream.split();
        let _ = tokio::io::copy(&mut reader, &mut writer).await;
    })
    .await
}

async fn serve<F, Fut>(handle: F) -> Result<SocketAddr>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handle(stream));
        }
    });
    Ok(address)
}

/// Random-looking bytes (a fixed xorshift stream: every byte value, no repeating pattern).
fn payload(len: usize, seed: u64) -> Arc<Vec<u8>> {
    let mut state = seed | 1;
    let data = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    Arc::new(data)
}

/// Writes `data` to `writer` while reading as many bytes from `reader`; fails unless they are the
/// same bytes. Returns the seconds it took, and the writer (dropping it ends the plugin's input,
/// which ends a standard-streams session).
async fn round_trip<W: AsyncWrite + Unpin + Send + 'static>(
    mut writer: W,
    reader: &mut (impl AsyncRead + Unpin),
    data: Arc<Vec<u8>>,
) -> Result<(f64, W)> {
    let started = std::time::Instant::now();
    let sent = data.clone();
    let write = tokio::spawn(async move { writer.write_all(&sent).await.map(|_| writer) });
    let mut back = vec![0; data.len()];
    tokio::time::timeout(TIMEOUT, reader.read_exact(&mut back))
        .await
        .context("the bytes did not come back in time")??;
    let writer = write.await??;
    if back != *data {
        let first = back.iter().zip(data.iter()).position(|(a, b)| a != b);
        bail!("{} bytes came back different, first at {first:?}", data.len());
    }
    Ok((started.elapsed().as_secs_f64(), writer))
}

/// Reads the plugin's stdout up to and including `line_start`'s line (what it prints before data).
async fn skip_to_line(stdout: &mut (impl AsyncBufReadExt + Unpin), line_start: &str) -> Result<()> {
    for _ in 0..10 {
        let mut line = String::new();
        let read = tokio::time::timeout(TIMEOUT, stdout.read_line(&mut line)).await??;
        ensure!(read > 0, "the plugin ended before printing {line_start:?}");
        if line.starts_with(line_start) {
            return Ok(());
        }
    }
    bail!("the plugin did not print {line_start:?}")
}

/// Waits for the plugin to exit by itself (it exits on channel_closed).
async fn exits(session: &mut PluginSession) -> Result<()> {
    let status = tokio::time::timeout(Duration::from_secs(20), session.child.wait())
        .await
        .context("the plugin did not exit after the session ended")??;
    ensure!(status.success(), "the plugin exited with {status}");
    Ok(())
}

async fn recorded(aws: &AwsEmulator, id: &str) -> Result<passport_tests::session_manager::RecordedSession> {
    aws.sessions()
        .await?
        .into_iter()
        .find(|s| s.session_id == id)
        .with_context(|| format!("the emulator recorded no session {id}"))
}

async fn terminate(client: &Client, id: &str) -> Result<()> {
    client.terminate_session().session_id(id).send().await?;
    Ok(())
}

/// The plugin on passport's SSH document to the test instance, with the emulator's own credentials.
async fn ssh_document_session(aws: &AwsEmulator, client: &Client) -> Result<PluginSession> {
    start_plugin(
        client,
        &aws.env_vars(),
        aws.endpoint(),
        INSTANCE,
        SSH_DOCUMENT,
        &[],
    )
    .await
}

async fn standard_streams() -> Result<()> {
    let (aws, client) = setup(echo_service().await?).await?;
    let mut session = ssh_document_session(&aws, &client).await?;
    let stdin = session.child.stdin.take().context("stdin")?;
    let mut stdout = BufReader::new(session.child.stdout.take().context("stdout")?);
    skip_to_line(&mut stdout, "Starting session with SessionId:").await?;
    let size = 4 * MB;
    let (seconds, _stdin) = round_trip(stdin, &mut stdout, payload(size, 7)).await?;
    println!(
        "session manager, standard streams: {} MB each way in {seconds:.1} s ({:.0} KB/s)",
        size / MB,
        size as f64 / seconds / 1024.0
    );
    let id = session.session_id.clone();
    let active = client
        .describe_sessions()
        .state(SessionState::Active)
        .send()
        .await?;
    ensure!(
        active
            .sessions()
            .iter()
            .any(|s| s.session_id() == Some(id.as_str())),
        "DescribeSessions Active lacks {id}"
    );
    terminate(&client, &id).await?;
    exits(&mut session).await?;
    let session = recorded(&aws, &id).await?;
    ensure!(
        session.status == "Terminated" && session.reason == "TerminateSession",
        "{session:?}"
    );
    ensure!(
        session.document_name == SSH_DOCUMENT
            && session.properties == serde_json::json!({"portNumber": "22"}),
        "{session:?}"
    );
    ensure!(
        session.bytes_from_client == size as u64 && session.bytes_to_client == size as u64,
        "the gateway counted {} bytes in and {} out, not {size}",
        session.bytes_from_client,
        session.bytes_to_client
    );
    let history = client
        .describe_sessions()
        .state(SessionState::History)
        .send()
        .await?;
    ensure!(
        history
            .sessions()
            .iter()
            .any(|s| s.session_id() == Some(id.as_str())
                && s.document_name() == Some(SSH_DOCUMENT)
                && s.target() == Some(INSTANCE)),
        "DescribeSessions History lacks {id}: {:?}",
        history.sessions()
    );
    Ok(())
}

async fn port_forwarding() -> Result<()> {
    let (aws, client) = setup(echo_service().await?).await?;
    let local = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
    let parameters = [("localPortNumber", local.to_string())];
    let mut session = start_plugin(
        &client,
        &aws.env_vars(),
        aws.endpoint(),
        INSTANCE,
        RDP_DOCUMENT,
        &parameters,
    )
    .await?;
    let mut stdout = BufReader::new(session.child.stdout.take().context("stdout")?);
    skip_to_line(&mut stdout, "Waiting for connections").await?;
    // Two connections at once: two smux streams in one session, each to its own target connection.
    let size = 2 * MB;
    let connections = (0..2u64).map(|n| async move {
        let (mut reader, writer) = TcpStream::connect(("127.0.0.1", local)).await?.into_split();
        round_trip(writer, &mut reader, payload(size, 11 + n))
            .await
            .map(|(seconds, _)| seconds)
    });
    let seconds = futures::future::try_join_all(connections).await?;
    println!(
        "session manager, port forwarding (smux): 2 connections x {} MB each way in {:.1} s",
        size / MB,
        seconds.iter().cloned().fold(0.0, f64::max)
    );
    let id = session.session_id.clone();
    let recorded_session = recorded(&aws, &id).await?;
    ensure!(
        recorded_session.properties["type"] == "LocalPortForwarding"
            && recorded_session.properties["portNumber"] == "3389"
            && recorded_session.properties["localPortNumber"].as_str() == Some(local.to_string().as_str()),
        "the plugin got other properties: {recorded_session:?}"
    );
    terminate(&client, &id).await?;
    exits(&mut session).await?;
    ensure!(
        TcpStream::connect(("127.0.0.1", local)).await.is_err(),
        "the forwarded port still accepts connections after TerminateSession"
    );
    Ok(())
}

async fn target_closes() -> Result<()> {
    let banner = serve(|mut stream| async move {
        let _ = stream.write_all(b"SSH-2.0-stand-in\r\n").await;
    })
    .await?;
    let (aws, client) = setup(banner).await?;
    let mut session = ssh_document_session(&aws, &client).await?;
    // Held open: the plugin ends a session whose input ends (and Child::wait closes a stdin it holds).
    let _stdin = session.child.stdin.take();
    let mut stdout = BufReader::new(session.child.stdout.take().context("stdout")?);
    skip_to_line(&mut stdout, "Starting session with SessionId:").await?;
    let mut line = String::new();
    tokio::time::timeout(TIMEOUT, stdout.read_line(&mut line)).await??;
    ensure!(line == "SSH-2.0-stand-in\r\n", "the plugin wrote {line:?}");
    let mut rest = String::new();
    tokio::time::timeout(TIMEOUT, stdout.read_to_string(&mut rest)).await??;
    exits(&mut session).await?;
    ensure!(
        rest.contains("Exiting session with sessionId"),
        "the plugin did not get channel_closed; it wrote {rest:?}"
    );
    let session = recorded(&aws, &session.session_id).await?;
    ensure!(
        session.status == "Terminated" && session.reason.contains("ended"),
        "{session:?}"
    );
    Ok(())
}

/// The session policy of scoped credentials, as passport's operator writes it: StartSession on one
/// instance and passport's SSH document, TerminateSession on the sessions these credentials start.
/// `document_check`: with `ssm:SessionDocumentAccessCheck`, as the operator writes it.
fn scoped_policy(role_session: &str, document_check: bool) -> String {
    let arn = |service: &str, resource: &str| format!("arn:aws:{service}:us-east-1:123456789012:{resource}");
    let condition = if document_check {
        serde_json::json!({"Bool": {"ssm:SessionDocumentAccessCheck": "true"}})
    } else {
        serde_json::json!({})
    };
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["ssm:StartSession"],
             "Resource": [arn("ec2", &format!("instance/{INSTANCE}")), arn("ssm", &format!("document/{SSH_DOCUMENT}"))],
             "Condition": condition},
            {"Effect": "Allow", "Action": ["ssm:TerminateSession"],
             "Resource": [arn("ssm", &format!("session/{role_session}-*"))]},
        ],
    })
    .to_string()
}

/// Credentials of the target role narrowed by `policy`.
async fn assume_scoped(
    aws: &AwsEmulator,
    role_session: &str,
    policy: String,
) -> Result<aws_sdk_sts::types::Credentials> {
    let sts = aws_sdk_sts::Client::new(&aws.sdk_config());
    let assumed = sts
        .assume_role()
        .role_arn("arn:aws:iam::123456789012:role/passport-target")
        .role_session_name(role_session)
        .policy(policy)
        .send()
        .await?;
    assumed.credentials().cloned().context("no credentials")
}

/// An SSM client signing with `creds`.
fn scoped_client(aws: &AwsEmulator, creds: &aws_sdk_sts::types::Credentials) -> Client {
    let scoped_credentials = aws_sdk_ssm::config::Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_owned()),
        None,
        "scoped",
    );
    Client::from_conf(
        aws_sdk_ssm::config::Builder::from(&aws.sdk_config())
            .credentials_provider(scoped_credentials)
            .build(),
    )
}

/// A StartSession naming no document opens the default shell unless the policy's
/// `ssm:SessionDocumentAccessCheck` makes AWS check that document too: with the condition (as the
/// operator writes it) it is refused; without, it passes authorization (and fails only because the
/// emulator has no shell document to open).
async fn no_document_needs_the_access_check(aws: &AwsEmulator) -> Result<()> {
    for (document_check, role_session) in [(true, "passport-check-on"), (false, "passport-check-off")] {
        let creds = assume_scoped(aws, role_session, scoped_policy(role_session, document_check)).await?;
        let client = scoped_client(aws, &creds);
        let code = match client.start_session().target(INSTANCE).send().await {
            Ok(_) => "opened".to_owned(),
            Err(err) => err.code().unwrap_or("no code").to_owned(),
        };
        let expected = if document_check {
            "AccessDeniedException"
        } else {
            "InvalidDocument"
        };
        ensure!(
            code == expected,
            "StartSession without a document, access check {document_check}: {code}, expected {expected}"
        );
    }
    Ok(())
}

async fn session_policy() -> Result<()> {
    let (aws, client) = setup(echo_service().await?).await?;
    no_document_needs_the_access_check(&aws).await?;
    let role_session = "passport-scoped-test";
    let creds = assume_scoped(&aws, role_session, scoped_policy(role_session, true)).await?;
    let mut env = aws.env_vars();
    env.retain(|(name, _)| !name.starts_with("AWS_ACCESS_KEY_ID") && *name != "AWS_SECRET_ACCESS_KEY");
    env.push(("AWS_ACCESS_KEY_ID", creds.access_key_id().to_owned()));
    env.push(("AWS_SECRET_ACCESS_KEY", creds.secret_access_key().to_owned()));
    env.push(("AWS_SESSION_TOKEN", creds.session_token().to_owned()));
    let scoped = scoped_client(&aws, &creds);

    for (target, document) in [(OTHER_INSTANCE, SSH_DOCUMENT), (INSTANCE, RDP_DOCUMENT)] {
        let refused = scoped
            .start_session()
            .target(target)
            .document_name(document)
            .send()
            .await;
        match refused {
            Err(err) if err.code() == Some("AccessDeniedException") => {}
            other => bail!("StartSession {target} {document} with the scoped role: {other:?}"),
        }
    }
    // Whoever may: a document that is not a Session document is refused as AWS refuses it.
    let wrong = client
        .start_session()
        .target(INSTANCE)
        .document_name("AWS-RunShellScript")
        .send()
        .await;
    ensure!(
        wrong.is_err(),
        "StartSession accepted a document that is no Session document"
    );

    let mut session = start_plugin(&scoped, &env, aws.endpoint(), INSTANCE, SSH_DOCUMENT, &[]).await?;
    ensure!(
        session.session_id.starts_with(&format!("{role_session}-")),
        "session id {} does not start with the role session's name",
        session.session_id
    );
    let stdin = session.child.stdin.take().context("stdin")?;
    let mut stdout = BufReader::new(session.child.stdout.take().context("stdout")?);
    skip_to_line(&mut stdout, "Starting session with SessionId:").await?;
    let _stdin = round_trip(stdin, &mut stdout, payload(64 * 1024, 5)).await?;
    terminate(&scoped, &session.session_id).await?;
    exits(&mut session).await?;
    let recorded_session = recorded(&aws, &session.session_id).await?;
    ensure!(
        recorded_session.owner
            == format!("arn:aws:sts::123456789012:assumed-role/passport-target/{role_session}"),
        "owner {}",
        recorded_session.owner
    );
    Ok(())
}
