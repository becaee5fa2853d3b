//! Opening a tunnel through a proxy over an established stream: an HTTP
//! `CONNECT` or a SOCKS5 handshake. Both run inside the caller's future,
//! under the connect deadline of whoever calls them, and consume exactly
//! the proxy's answer: bytes after it belong to the tunnel, and for a
//! `CONNECT` (used for TLS, where the client speaks first) any such byte
//! is refused rather than misread.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use http::StatusCode;

use crate::conn::MAX_INTERIM_RESPONSES;
use crate::proto::Limits;
use crate::proto::ProtoError;
use crate::proto::connect::encode_connect;
use crate::proto::head::parse_response_head;
use crate::proto::socks5::{self, Method, Socks5Error, Target};
use crate::proxy::Credentials;

/// Why a tunnel could not be opened.
#[derive(Debug)]
pub(crate) enum TunnelError {
    /// Reading from or writing to the proxy failed.
    Io(io::Error),
    /// The proxy closed the connection before its answer was complete.
    Closed,
    /// The proxy answered CONNECT with a status other than 2xx.
    Refused(StatusCode),
    /// The proxy's answer to CONNECT is not a valid response head.
    Protocol(ProtoError),
    /// Bytes arrived after a 2xx to CONNECT, before the client spoke.
    UnsolicitedBytes,
    /// The SOCKS5 handshake failed.
    Socks(Socks5Error),
}

impl fmt::Display for TunnelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TunnelError::Io(e) => write!(f, "I/O error with the proxy: {e}"),
            TunnelError::Closed => f.write_str("the proxy closed the connection before answering"),
            TunnelError::Refused(status) => write!(f, "the proxy refused the tunnel: {status}"),
            TunnelError::Protocol(e) => write!(f, "invalid answer to CONNECT: {e}"),
            TunnelError::UnsolicitedBytes => f.write_str("the proxy sent bytes after its answer to CONNECT"),
            TunnelError::Socks(e) => f.write_str(e.0),
        }
    }
}

impl From<io::Error> for TunnelError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof { TunnelError::Closed } else { TunnelError::Io(e) }
    }
}

/// Sends `CONNECT host:port` and reads the proxy's answer; `Ok` once a 2xx
/// head has been read, with the stream positioned at the tunnel's first
/// byte. Interim 1xx answers are skipped.
pub(crate) async fn http_connect<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    host: &str,
    port: u16,
    proxy_authorization: Option<&[u8]>,
    user_agent: Option<&[u8]>,
    limits: &Limits,
) -> Result<(), TunnelError> {
    let mut request = Vec::with_capacity(128);
    encode_connect(host, port, proxy_authorization, user_agent, &mut request).map_err(TunnelError::Protocol)?;
    io.write_all(&request).await?;
    io.flush().await?;

    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let mut interim = 0;
    loop {
        match parse_response_head(&buf, limits).map_err(TunnelError::Protocol)? {
            Some((head, len)) if head.status.is_informational() => {
                if head.status == StatusCode::SWITCHING_PROTOCOLS {
                    return Err(TunnelError::Protocol(ProtoError::InvalidHead("101 in answer to CONNECT")));
                }
                interim += 1;
                if interim > MAX_INTERIM_RESPONSES {
                    return Err(TunnelError::Protocol(ProtoError::InvalidHead("too many interim responses")));
                }
                buf.drain(..len);
                continue;
            }
            Some((head, len)) if head.status.is_success() => {
                return if buf.len() > len { Err(TunnelError::UnsolicitedBytes) } else { Ok(()) };
            }
            Some((head, _)) => return Err(TunnelError::Refused(head.status)),
            None => {}
        }
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(TunnelError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Runs the SOCKS5 handshake for `target`, with password authentication
/// when `credentials` are given and the proxy asks for it. Returns the
/// address the proxy reports it bound, when it reports one.
pub(crate) async fn socks5_connect<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    target: Target<'_>,
    credentials: Option<&Credentials>,
) -> Result<Option<SocketAddr>, TunnelError> {
    let mut out = Vec::with_capacity(64);
    // Everything that can be refused locally is checked before a byte goes out.
    let mut auth = Vec::new();
    if let Some(c) = credentials {
        socks5::encode_password(&c.user, &c.password, &mut auth).map_err(TunnelError::Socks)?;
    }
    socks5::encode_connect(target, &mut out).map_err(TunnelError::Socks)?;

    io.write_all(socks5::greeting(credentials.is_some())).await?;
    io.flush().await?;
    let mut choice = [0u8; 2];
    io.read_exact(&mut choice).await?;
    let (method, _) =
        socks5::parse_method(&choice, credentials.is_some()).map_err(TunnelError::Socks)?.ok_or(TunnelError::Closed)?;
    if method == Method::Password {
        io.write_all(&auth).await?;
        io.flush().await?;
        let mut status = [0u8; 2];
        io.read_exact(&mut status).await?;
        socks5::parse_password_status(&status).map_err(TunnelError::Socks)?;
    }
    io.write_all(&out).await?;
    io.flush().await?;

    // The reply's length follows from its first bytes: read exactly it.
    let mut reply = vec![0u8; 4];
    io.read_exact(&mut reply).await?;
    loop {
        match socks5::parse_reply(&reply).map_err(TunnelError::Socks)? {
            Some((bound, _)) => return Ok(bound),
            None => {
                let need = match reply[3] {
                    0x01 => 4 + 4 + 2,
                    0x04 => 4 + 16 + 2,
                    _ if reply.len() == 4 => 5,
                    _ => 4 + 1 + usize::from(reply[4]) + 2,
                };
                let have = reply.len();
                reply.resize(need, 0);
                io.read_exact(&mut reply[have..]).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::thread;
    use std::time::Duration;

    use async_io::Async;

    /// A one-connection proxy on loopback: `script` gets the accepted
    /// socket; the client side is returned with the thread's handle,
    /// which yields what the script returns.
    fn scripted<T: Send + 'static>(
        script: impl FnOnce(TcpStream) -> T + Send + 'static,
    ) -> (Async<TcpStream>, thread::JoinHandle<T>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let (socket, _) = listener.accept().unwrap();
            socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            script(socket)
        });
        (smol::block_on(Async::<TcpStream>::connect(addr)).unwrap(), handle)
    }

    /// Reads one request head (up to the empty line).
    fn read_head(socket: &mut TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    }

    fn connect_with(answer: Vec<&'static [u8]>) -> (Result<(), TunnelError>, String, Async<TcpStream>) {
        let (mut client, proxy) = scripted(move |mut socket| {
            let head = read_head(&mut socket);
            for piece in answer {
                socket.write_all(piece).unwrap();
                thread::sleep(Duration::from_millis(5));
            }
            head
        });
        let result = smol::block_on(http_connect(
            &mut client,
            "origin.test",
            443,
            Some(b"Basic dTpw"),
            None,
            &Limits::default(),
        ));
        (result, proxy.join().unwrap(), client)
    }

    #[test]
    fn connect_200_split_over_writes_opens_the_tunnel() {
        let (result, head, mut client) =
            connect_with(vec![b"HTTP/1.1 200 Conn", b"ection established\r\n", b"Via: x\r\n\r", b"\n"]);
        result.unwrap();
        assert_eq!(
            head,
            "CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\nProxy-Authorization: Basic dTpw\r\n\r\n"
        );
        // Nothing of the answer is left over: the next read is the tunnel's EOF.
        let mut rest = Vec::new();
        smol::block_on(client.read_to_end(&mut rest)).unwrap();
        assert!(rest.is_empty(), "{rest:?}");
    }

    #[test]
    fn interim_answers_are_skipped() {
        let (result, _, _) = connect_with(vec![b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"]);
        result.unwrap();
    }

    #[test]
    fn interim_answers_are_bounded() {
        let many: &'static [u8] = "HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM_RESPONSES + 1).leak().as_bytes();
        let (result, _, _) = connect_with(vec![many, b"HTTP/1.1 200 OK\r\n\r\n"]);
        assert!(matches!(result, Err(TunnelError::Protocol(_))), "{result:?}");
        let enough: &'static [u8] = "HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM_RESPONSES).leak().as_bytes();
        let (result, _, _) = connect_with(vec![enough, b"HTTP/1.1 200 OK\r\n\r\n"]);
        result.unwrap();
    }

    #[test]
    fn a_407_is_refused_with_its_status() {
        let (result, _, _) = connect_with(vec![
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 0\r\n\r\n",
        ]);
        match result {
            Err(TunnelError::Refused(status)) => assert_eq!(status, 407),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_502_is_refused() {
        let (result, _, _) = connect_with(vec![b"HTTP/1.1 502 Bad Gateway\r\n\r\n"]);
        assert!(matches!(result, Err(TunnelError::Refused(s)) if s == 502));
    }

    #[test]
    fn garbage_instead_of_a_status_line_is_a_protocol_error() {
        let (result, _, _) = connect_with(vec![b"SSH-2.0-OpenSSH_9.6\r\n\r\n"]);
        assert!(matches!(result, Err(TunnelError::Protocol(_))), "{result:?}");
    }

    #[test]
    fn a_proxy_closing_mid_answer_is_closed_not_a_hang() {
        let (result, _, _) = connect_with(vec![b"HTTP/1.1 200 Conn"]);
        assert!(matches!(result, Err(TunnelError::Closed)), "{result:?}");
        let (result, _, _) = connect_with(vec![]);
        assert!(matches!(result, Err(TunnelError::Closed)), "{result:?}");
    }

    #[test]
    fn bytes_after_the_200_are_refused_not_misread() {
        let (result, _, _) = connect_with(vec![b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 200 OK\r\n\r\nforged"]);
        assert!(matches!(result, Err(TunnelError::UnsolicitedBytes)), "{result:?}");
    }

    #[test]
    fn an_endless_head_hits_the_size_limit() {
        let limits = Limits { max_head_size: 1024, ..Limits::default() };
        let (mut client, proxy) = scripted(move |mut socket| {
            read_head(&mut socket);
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\n");
            for _ in 0..100 {
                if socket.write_all(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n").is_err() {
                    break;
                }
            }
        });
        let result = smol::block_on(http_connect(&mut client, "o.test", 443, None, None, &limits));
        assert!(matches!(result, Err(TunnelError::Protocol(ProtoError::HeadTooLarge(1024)))), "{result:?}");
        drop(client);
        proxy.join().unwrap();
    }

    fn creds(user: &str, password: &str) -> Credentials {
        Credentials { user: user.into(), password: password.into() }
    }

    /// A SOCKS5 proxy that checks each message and answers from `reply`.
    fn socks_with(password: bool, reply: &'static [u8]) -> (Async<TcpStream>, thread::JoinHandle<Vec<u8>>) {
        scripted(move |mut socket| {
            let mut seen = Vec::new();
            let mut greeting = [0u8; 4];
            let n = if password { 4 } else { 3 };
            socket.read_exact(&mut greeting[..n]).unwrap();
            seen.extend_from_slice(&greeting[..n]);
            if password {
                socket.write_all(&[5, 2]).unwrap();
                let mut auth = [0u8; 14];
                socket.read_exact(&mut auth).unwrap();
                seen.extend_from_slice(&auth);
                socket.write_all(&[1, 0]).unwrap();
            } else {
                socket.write_all(&[5, 0]).unwrap();
            }
            let mut request = [0u8; 7 + 11];
            socket.read_exact(&mut request).unwrap();
            seen.extend_from_slice(&request);
            for byte in reply {
                socket.write_all(&[*byte]).unwrap();
            }
            socket.write_all(b"tunnel").unwrap();
            seen
        })
    }

    #[test]
    fn socks5_with_password_and_a_name_reads_exactly_the_reply() {
        let (mut client, proxy) = socks_with(true, &[5, 0, 0, 1, 10, 0, 0, 9, 0, 80]);
        let bound = smol::block_on(socks5_connect(
            &mut client,
            Target::Name("example.com", 443),
            Some(&creds("alice", "secret")),
        ))
        .unwrap();
        assert_eq!(bound, Some("10.0.0.9:80".parse().unwrap()));
        let mut rest = Vec::new();
        smol::block_on(client.read_to_end(&mut rest)).unwrap();
        assert_eq!(rest, b"tunnel", "the bytes after the reply belong to the tunnel");
        let seen = proxy.join().unwrap();
        assert_eq!(&seen[..4], [5, 2, 0, 2]);
        assert_eq!(&seen[4..18], b"\x01\x05alice\x06secret");
        assert_eq!(&seen[18..], b"\x05\x01\x00\x03\x0bexample.com\x01\xbb");
    }

    #[test]
    fn socks5_reply_with_a_name_and_ipv6() {
        for reply in [
            &b"\x05\x00\x00\x03\x04host\x01\xbb"[..],
            &[5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1],
        ] {
            let reply: &'static [u8] = Box::leak(reply.to_vec().into_boxed_slice());
            let (mut client, proxy) = socks_with(false, reply);
            smol::block_on(socks5_connect(&mut client, Target::Name("example.com", 443), None)).unwrap();
            let mut rest = Vec::new();
            smol::block_on(client.read_to_end(&mut rest)).unwrap();
            assert_eq!(rest, b"tunnel");
            proxy.join().unwrap();
        }
    }

    #[test]
    fn socks5_failure_code_is_reported() {
        let (mut client, _proxy) = socks_with(false, &[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
        let err = smol::block_on(socks5_connect(&mut client, Target::Name("example.com", 443), None)).unwrap_err();
        assert!(err.to_string().contains("connection refused"), "{err}");
    }

    #[test]
    fn socks5_proxy_wanting_a_password_we_do_not_have() {
        let (mut client, proxy) = scripted(|mut socket| {
            let mut greeting = [0u8; 3];
            socket.read_exact(&mut greeting).unwrap();
            socket.write_all(&[5, 0xff]).unwrap();
        });
        let err = smol::block_on(socks5_connect(&mut client, Target::Name("example.com", 443), None)).unwrap_err();
        assert!(err.to_string().contains("requires authentication"), "{err}");
        proxy.join().unwrap();
    }

    #[test]
    fn socks5_wrong_password_and_a_closing_proxy() {
        let (mut client, proxy) = scripted(|mut socket| {
            let mut buf = [0u8; 4 + 8];
            socket.read_exact(&mut buf[..4]).unwrap();
            socket.write_all(&[5, 2]).unwrap();
            socket.read_exact(&mut buf[..8]).unwrap();
            socket.write_all(&[1, 1]).unwrap();
        });
        let err =
            smol::block_on(socks5_connect(&mut client, Target::Name("h", 1), Some(&creds("u", "wrong!")))).unwrap_err();
        assert!(err.to_string().contains("rejected the user name or password"), "{err}");
        proxy.join().unwrap();

        let (mut client, proxy) = scripted(|mut socket| {
            let mut greeting = [0u8; 3];
            socket.read_exact(&mut greeting).unwrap();
            socket.write_all(&[5]).unwrap();
        });
        let err = smol::block_on(socks5_connect(&mut client, Target::Name("h", 1), None)).unwrap_err();
        assert!(matches!(err, TunnelError::Closed), "{err:?}");
        proxy.join().unwrap();
    }

    #[test]
    fn socks5_refuses_a_long_name_before_sending_anything() {
        let (mut client, proxy) = scripted(|mut socket| {
            let mut any = Vec::new();
            socket.read_to_end(&mut any).unwrap();
            any
        });
        let name = "a".repeat(300);
        let err = smol::block_on(socks5_connect(&mut client, Target::Name(&name, 1), None)).unwrap_err();
        assert!(err.to_string().contains("1 to 255 bytes"), "{err}");
        drop(client);
        assert!(proxy.join().unwrap().is_empty(), "nothing may be sent");
    }
}
