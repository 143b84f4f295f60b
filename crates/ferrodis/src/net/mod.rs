//! Outbound and inbound byte streams that are plain TCP or TLS: what replication, the cluster
//! bus and Sentinel's links read and write. The client connection's hot path has its own
//! socket type (`server::io`), which wraps the same TLS stream.
//!
//! A TLS stream buffers records: after `write_all` comes `flush`, or the bytes may stay in the
//! session until the next write.

pub mod tls;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub use tls::Tls;

/// A connection, plain or TLS (either end of the handshake).
pub enum Stream {
    Plain(TcpStream),
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Client(s) => s.get_ref().0,
            Stream::Server(s) => s.get_ref().0,
        }
    }
    pub fn is_tls(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Plain($s) => $e,
            Stream::Client($s) => $e,
            Stream::Server($s) => $e,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// The name a TLS client presents for `host` (an IP address or a DNS name).
fn server_name(host: &str) -> io::Result<rustls::pki_types::ServerName<'static>> {
    rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Connects to `host:port`, with a TLS handshake when `tls` is given; both within `timeout`.
pub async fn connect(host: &str, port: u16, tls: Option<&Tls>, timeout: Duration) -> io::Result<Stream> {
    let work = async {
        let s = TcpStream::connect((host, port)).await?;
        let _ = s.set_nodelay(true);
        match tls {
            None => Ok(Stream::Plain(s)),
            Some(t) => {
                let c = t.connector.as_ref().ok_or_else(|| io::Error::other("no tls-ca-cert-file to verify the peer with"))?;
                Ok(Stream::Client(Box::new(c.connect(server_name(host)?, s).await?)))
            }
        }
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connection timed out"))?
}

/// The server side of a TLS handshake on an accepted connection, within `timeout`.
pub async fn accept(tls: &Tls, s: TcpStream, timeout: Duration) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    tokio::time::timeout(timeout, tls.acceptor.accept(s))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}
