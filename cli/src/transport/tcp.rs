//! Plain TCP tunnels to direct endpoints: ssh's ProxyCommand as a pipe between stdin/stdout and a
//! socket, and a local port forward (for RDP).

use std::{
    fs::File,
    io::{self, Read, Write},
    net::{Shutdown, TcpStream},
    os::fd::AsFd,
    time::Duration,
};

use anyhow::{Context, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `address` (HOST:PORT) and pipes stdin to it and it to stdout until it closes. stdin's
/// end is passed on as a half-close, so the server still sends what it has.
pub fn pipe_stdio(address: &str) -> Result<()> {
    let stream = connect(address)?;
    let _ = stream.set_nodelay(true);
    let mut upload = stream.try_clone()?;
    let mut download = stream;
    // Unbuffered handles on fds 0 and 1: std's stdout buffers by line, which would stall ssh.
    let mut stdin = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let mut stdout = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    std::thread::spawn(move || {
        let _ = copy(&mut stdin, &mut upload);
        let _ = upload.shutdown(Shutdown::Write);
    });
    // When the server side ends, so does the tunnel; a pending stdin read dies with the process.
    let _ = copy(&mut download, &mut stdout);
    Ok(())
}

fn connect(address: &str) -> Result<TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for addr in address
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {address}"))?
    {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(err) => last = Some(err),
        }
    }
    match last {
        Some(err) => Err(err).with_context(|| format!("cannot connect to {address}")),
        None => anyhow::bail!("{address} resolves to no address"),
    }
}

/// Copies until EOF or an error; every chunk is written as soon as it is read.
fn copy(from: &mut impl Read, to: &mut impl Write) -> io::Result<u64> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        to.write_all(&buffer[..n])?;
        to.flush()?;
        total += n as u64;
    }
}

/// Accepts connections on `listener` forever and forwards each to `target` (HOST:PORT).
pub async fn forward(listener: tokio::net::TcpListener, target: String) -> Result<()> {
    loop {
        let (mut inbound, _) = listener.accept().await.context("accepting a connection")?;
        let target = target.clone();
        tokio::spawn(async move {
            match tokio::net::TcpStream::connect(&target).await {
                Ok(mut outbound) => {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                Err(err) => eprintln!("kubectl-passport: cannot connect to {target}: {err}"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn forwards_both_ways() -> Result<()> {
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let echo_addr = echo.local_addr()?.to_string();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = socket.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let local = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let local_addr = local.local_addr()?;
        tokio::spawn(forward(local, echo_addr));
        let mut client = tokio::net::TcpStream::connect(local_addr).await?;
        client.write_all(b"hello rdp").await?;
        let mut buffer = [0u8; 9];
        client.read_exact(&mut buffer).await?;
        assert_eq!(&buffer, b"hello rdp");
        Ok(())
    }

    #[test]
    fn refused_connections_say_where() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let err = connect(&format!("127.0.0.1:{port}")).expect_err("nothing listens");
        assert!(
            format!("{err:#}").contains(&format!("cannot connect to 127.0.0.1:{port}")),
            "{err:#}"
        );
    }

    #[test]
    fn copy_passes_every_byte() -> io::Result<()> {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        assert_eq!(copy(&mut data.as_slice(), &mut out)?, data.len() as u64);
        assert_eq!(out, data);
        Ok(())
    }
}
