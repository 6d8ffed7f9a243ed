//! The client's connection: connect to the first address that answers, send commands,
//! read replies under a timeout, switch to TLS. Replies and lines are bounded, so a hostile
//! server cannot make us buffer without end. The SMTP dialogue is in `mod.rs`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use openssl::ssl::SslVerifyMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tracing::debug;

use super::wire::{build_reply, parse_reply_line};
use super::ClientError;
use crate::tls::{MaybeTls, Role, UpgradeError};
use crate::{ClientConfig, Reply};

/// Longest reply line we read (RFC 5321 §4.5.3.1.5 says 512; be generous).
const MAX_REPLY_LINE: usize = 8192;
/// Most lines in one reply.
const MAX_REPLY_LINES: usize = 200;

/// Connect to `addr`, from `from` when given (any port).
async fn connect_from(from: Option<IpAddr>, addr: SocketAddr) -> io::Result<TcpStream> {
    let Some(from) = from else {
        return TcpStream::connect(addr).await;
    };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// An open SMTP connection, client side.
pub(crate) struct ClientConn {
    stream: MaybeTls<TcpStream>,
    buf: Vec<u8>,
    /// The address connected to.
    pub(crate) remote: SocketAddr,
}

impl ClientConn {
    /// Resolves `target` (host:port) and connects to the first address that accepts, from
    /// the address in `bind` of its family, if any.
    pub(crate) async fn connect(
        target: &str,
        timeout: Duration,
        bind: &[IpAddr],
    ) -> Result<ClientConn, ClientError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(target)
            .await
            .map_err(|source| ClientError::Resolve {
                name: target.to_string(),
                source,
            })?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no addresses");
        if addrs.is_empty() {
            return Err(ClientError::Resolve {
                name: target.to_string(),
                source: last,
            });
        }
        for addr in addrs {
            let from = bind.iter().find(|b| b.is_ipv4() == addr.is_ipv4()).copied();
            match tokio::time::timeout(timeout, connect_from(from, addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(ClientConn {
                        stream: MaybeTls::Plain(stream),
                        buf: Vec::new(),
                        remote: addr,
                    });
                }
                Ok(Err(e)) => {
                    debug!(%addr, cause = %e, "connect failed");
                    last = e;
                }
                Err(_) => {
                    debug!(%addr, "connect timed out");
                    last = io::Error::new(io::ErrorKind::TimedOut, format!("{addr}: timed out"));
                }
            }
        }
        Err(ClientError::Connect {
            target: target.to_string(),
            source: last,
        })
    }

    /// Whether STARTTLS has completed.
    pub(crate) fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// Writes bytes (commands or content) within `timeout`.
    pub(crate) async fn send(
        &mut self,
        bytes: &[u8],
        timeout: Duration,
        stage: &'static str,
    ) -> Result<(), ClientError> {
        let write = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(ClientError::Io { stage, source }),
            Err(_) => Err(ClientError::Timeout { stage }),
        }
    }

    /// Writes a piece of the content within `timeout`, without flushing (see [`Self::send`]).
    pub(crate) async fn write_part(
        &mut self,
        bytes: &[u8],
        timeout: Duration,
        stage: &'static str,
    ) -> Result<(), ClientError> {
        match tokio::time::timeout(timeout, self.stream.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(ClientError::Io { stage, source }),
            Err(_) => Err(ClientError::Timeout { stage }),
        }
    }

    /// Reads one whole reply (all its lines) within `timeout`.
    pub(crate) async fn read_reply(
        &mut self,
        timeout: Duration,
        stage: &'static str,
    ) -> Result<Reply, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut code = None;
        let mut texts: Vec<String> = Vec::new();
        loop {
            let line = self.read_line(deadline, stage).await?;
            let bad = || ClientError::BadReply {
                stage,
                line: line.chars().take(200).collect(),
            };
            let parsed = parse_reply_line(&line).ok_or_else(bad)?;
            if *code.get_or_insert(parsed.code) != parsed.code || texts.len() >= MAX_REPLY_LINES {
                return Err(bad());
            }
            texts.push(parsed.text.to_string());
            if !parsed.more {
                let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                return Ok(build_reply(parsed.code, &texts));
            }
        }
    }

    async fn read_line(
        &mut self,
        deadline: Instant,
        stage: &'static str,
    ) -> Result<String, ClientError> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf) {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                return Ok(String::from_utf8_lossy(line).into_owned());
            }
            if self.buf.len() > MAX_REPLY_LINE {
                return Err(ClientError::BadReply {
                    stage,
                    line: "reply line too long".to_string(),
                });
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Err(ClientError::Timeout { stage }),
                Ok(Err(source)) => return Err(ClientError::Io { stage, source }),
                Ok(Ok(0)) => {
                    return Err(ClientError::Io {
                        stage,
                        source: io::Error::new(io::ErrorKind::UnexpectedEof, "server closed"),
                    })
                }
                Ok(Ok(n)) => self
                    .buf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
        }
    }

    /// The TLS handshake after the server's `220` to STARTTLS. `host` is for SNI and (when
    /// `cfg.verify_tls`) for checking the certificate's name.
    pub(crate) async fn start_tls(
        &mut self,
        cfg: &ClientConfig,
        host: &str,
    ) -> Result<(), ClientError> {
        const STAGE: &str = "TLS handshake";
        // RFC 3207 §4.2: anything the server sent before the handshake is not to be trusted.
        self.buf.clear();
        let tls_err = |source: openssl::ssl::Error| ClientError::Tls {
            target: host.to_string(),
            source,
        };
        let mut config = cfg.tls.configure().map_err(|e| tls_err(e.into()))?;
        if !cfg.verify_tls {
            config.set_verify_hostname(false);
            config.set_verify(SslVerifyMode::NONE);
        }
        let ssl = config.into_ssl(host).map_err(|e| tls_err(e.into()))?;
        let upgrade = self.stream.upgrade(ssl, Role::Client);
        match tokio::time::timeout(cfg.command_timeout, upgrade).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(UpgradeError::NotPlain)) => Err(ClientError::BadReply {
                stage: STAGE,
                line: "STARTTLS on a connection already in TLS".to_string(),
            }),
            Ok(Err(UpgradeError::Setup(e))) => Err(tls_err(e.into())),
            Ok(Err(UpgradeError::Handshake(e))) => Err(tls_err(e)),
            Ok(Err(UpgradeError::Timeout)) | Err(_) => Err(ClientError::Timeout { stage: STAGE }),
        }
    }

    /// QUIT, best effort: the outcome is already known, so errors here are ignored.
    pub(crate) async fn quit(&mut self, timeout: Duration) {
        if self.send(b"QUIT\r\n", timeout, "QUIT").await.is_ok() {
            let _ = self.read_reply(timeout, "QUIT").await;
        }
        let _ = tokio::time::timeout(timeout, self.stream.shutdown()).await;
    }
}
