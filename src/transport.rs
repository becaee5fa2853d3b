//! Dialing: address resolution, TCP connect with a deadline, TCP_NODELAY,
//! and the stream type every connection runs over.
//!
//! [`Stream`] is an enum, not a trait object, so the hot path of reading
//! and writing is a direct call.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use async_io::Async;
use futures_io::{AsyncRead, AsyncWrite};

use crate::error::{Error, ErrorKind, Result};
use crate::util::with_deadline;

/// A connected byte stream to one origin.
#[derive(Debug)]
pub(crate) enum Stream {
    /// Plain TCP.
    Tcp(Async<TcpStream>),
}

impl Stream {
    /// Checks, without blocking, whether an idle connection can carry a new
    /// request: the server must not have closed it (EOF), reset it, or sent
    /// bytes nobody asked for.
    pub(crate) fn is_reusable_idle(&self) -> bool {
        match self {
            Stream::Tcp(tcp) => {
                let mut byte = [0u8; 1];
                matches!(tcp.get_ref().peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }
}

/// Opens a TCP connection to `host:port`, trying each resolved address in
/// turn, within `deadline` when one is given.
pub(crate) async fn dial(host: &str, port: u16, deadline: Option<Instant>) -> Result<Stream> {
    with_deadline(deadline, async {
        let addrs = resolve(host, port).await?;
        let mut last_err = None;
        for addr in addrs {
            match Async::<TcpStream>::connect(addr).await {
                Ok(stream) => {
                    stream.get_ref().set_nodelay(true).map_err(|e| Error::with_source(ErrorKind::Connect, e))?;
                    return Ok(Stream::Tcp(stream));
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(match last_err {
            Some(e) => Error::with_source(ErrorKind::Connect, e),
            None => Error::new(ErrorKind::Connect, "host name resolved to no address"),
        })
    })
    .await
    .map_err(|e| if e.is_timeout() { Error::new(ErrorKind::Timeout, "connect timed out") } else { e })
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    // An IP literal needs no resolver (and no helper thread).
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    // Name resolution is blocking in the OS; async-net runs it on its
    // `blocking` thread pool, the one place smolreq leaves the caller's task.
    async_net::resolve((host, port)).await.map_err(|e| Error::with_source(ErrorKind::Connect, e))
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_close(cx),
        }
    }
}
