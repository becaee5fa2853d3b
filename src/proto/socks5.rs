//! SOCKS5 (RFC 1928) with username/password authentication (RFC 1929),
//! client side, sans-IO: each step encodes what to send or parses what
//! arrived, returning `Ok(None)` while more bytes are needed.
//!
//! The exchange: greeting → method choice → (password request → status) →
//! CONNECT request → reply. After a successful reply the stream carries
//! the tunnelled bytes; a reply says exactly how long it is, so nothing
//! that follows it is ever consumed.

use std::net::{IpAddr, SocketAddr};

/// Why a SOCKS5 handshake failed, in the words of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Socks5Error(pub(crate) &'static str);

/// The authentication method the proxy chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    /// No authentication.
    None,
    /// Username and password (RFC 1929).
    Password,
}

/// Where the proxy should connect: an address resolved by the client
/// (`socks5://`) or a name for the proxy to resolve (`socks5h://`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    Addr(SocketAddr),
    Name(&'a str, u16),
}

const VERSION: u8 = 5;

/// The greeting: the methods offered. With credentials both "none" and
/// "password" are offered, and the proxy chooses (as curl does).
pub(crate) fn greeting(with_password: bool) -> &'static [u8] {
    if with_password { &[VERSION, 2, 0x00, 0x02] } else { &[VERSION, 1, 0x00] }
}

/// Parses the method choice (2 bytes).
pub(crate) fn parse_method(buf: &[u8], with_password: bool) -> Result<Option<(Method, usize)>, Socks5Error> {
    let [version, method, ..] = *buf else { return Ok(None) };
    if version != VERSION {
        return Err(Socks5Error("the proxy did not answer as a SOCKS5 server"));
    }
    match method {
        0x00 => Ok(Some((Method::None, 2))),
        0x02 if with_password => Ok(Some((Method::Password, 2))),
        0xff if with_password => {
            Err(Socks5Error("the SOCKS5 proxy accepts none of the offered authentication methods"))
        }
        0xff => Err(Socks5Error("the SOCKS5 proxy requires authentication (give the proxy URL a user and password)")),
        _ => Err(Socks5Error("the SOCKS5 proxy chose an authentication method that was not offered")),
    }
}

/// The username/password request (RFC 1929): each at most 255 bytes.
pub(crate) fn encode_password(user: &str, password: &str, buf: &mut Vec<u8>) -> Result<(), Socks5Error> {
    let (Ok(ulen), Ok(plen)) = (u8::try_from(user.len()), u8::try_from(password.len())) else {
        return Err(Socks5Error("SOCKS5 user name and password are limited to 255 bytes each"));
    };
    if ulen == 0 {
        return Err(Socks5Error("SOCKS5 password authentication needs a user name"));
    }
    buf.extend_from_slice(&[1, ulen]);
    buf.extend_from_slice(user.as_bytes());
    buf.push(plen);
    buf.extend_from_slice(password.as_bytes());
    Ok(())
}

/// Parses the status of the username/password request (2 bytes).
pub(crate) fn parse_password_status(buf: &[u8]) -> Result<Option<usize>, Socks5Error> {
    let [version, status, ..] = *buf else { return Ok(None) };
    match (version, status) {
        (1, 0) => Ok(Some(2)),
        (1, _) => Err(Socks5Error("the SOCKS5 proxy rejected the user name or password")),
        _ => Err(Socks5Error("invalid SOCKS5 authentication reply")),
    }
}

/// The CONNECT request.
pub(crate) fn encode_connect(target: Target<'_>, buf: &mut Vec<u8>) -> Result<(), Socks5Error> {
    buf.extend_from_slice(&[VERSION, 0x01, 0x00]);
    let port = match target {
        Target::Addr(SocketAddr::V4(a)) => {
            buf.push(0x01);
            buf.extend_from_slice(&a.ip().octets());
            a.port()
        }
        Target::Addr(SocketAddr::V6(a)) => {
            buf.push(0x04);
            buf.extend_from_slice(&a.ip().octets());
            a.port()
        }
        Target::Name(name, port) => {
            let len = u8::try_from(name.len())
                .ok()
                .filter(|&l| l > 0)
                .ok_or(Socks5Error("a host name sent to a SOCKS5 proxy must be 1 to 255 bytes"))?;
            buf.push(0x03);
            buf.push(len);
            buf.extend_from_slice(name.as_bytes());
            port
        }
    };
    buf.extend_from_slice(&port.to_be_bytes());
    Ok(())
}

/// Parses the reply to CONNECT; on success returns the address the proxy
/// bound (if it is an address) and the reply's length.
pub(crate) fn parse_reply(buf: &[u8]) -> Result<Option<(Option<SocketAddr>, usize)>, Socks5Error> {
    let [version, reply, _reserved, atyp, ref rest @ ..] = *buf else { return Ok(None) };
    if version != VERSION {
        return Err(Socks5Error("invalid SOCKS5 reply"));
    }
    if reply != 0 {
        return Err(Socks5Error(match reply {
            0x01 => "SOCKS5 proxy: general failure",
            0x02 => "SOCKS5 proxy: connection not allowed by its rules",
            0x03 => "SOCKS5 proxy: network unreachable",
            0x04 => "SOCKS5 proxy: host unreachable",
            0x05 => "SOCKS5 proxy: connection refused by the destination",
            0x06 => "SOCKS5 proxy: TTL expired",
            0x07 => "SOCKS5 proxy: command not supported",
            0x08 => "SOCKS5 proxy: address type not supported",
            _ => "SOCKS5 proxy: unknown failure code",
        }));
    }
    let addr_len = match atyp {
        0x01 => 4,
        0x04 => 16,
        0x03 => match rest.first() {
            Some(&n) => 1 + usize::from(n),
            None => return Ok(None),
        },
        _ => return Err(Socks5Error("invalid address type in SOCKS5 reply")),
    };
    if rest.len() < addr_len + 2 {
        return Ok(None);
    }
    let port = u16::from_be_bytes([rest[addr_len], rest[addr_len + 1]]);
    let bound = match atyp {
        0x01 => Some(SocketAddr::new(IpAddr::from(<[u8; 4]>::try_from(&rest[..4]).unwrap_or_default()), port)),
        0x04 => Some(SocketAddr::new(IpAddr::from(<[u8; 16]>::try_from(&rest[..16]).unwrap_or_default()), port)),
        _ => None,
    };
    Ok(Some((bound, 4 + addr_len + 2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_offers_password_only_with_credentials() {
        assert_eq!(greeting(false), [5, 1, 0]);
        assert_eq!(greeting(true), [5, 2, 0, 2]);
    }

    #[test]
    fn method_choice() {
        assert_eq!(parse_method(&[5], false), Ok(None));
        assert_eq!(parse_method(&[5, 0], false), Ok(Some((Method::None, 2))));
        assert_eq!(parse_method(&[5, 0, 99], true), Ok(Some((Method::None, 2))));
        assert_eq!(parse_method(&[5, 2], true), Ok(Some((Method::Password, 2))));
        assert!(parse_method(&[5, 2], false).unwrap_err().0.contains("not offered"));
        assert!(parse_method(&[5, 0xff], false).unwrap_err().0.contains("requires authentication"));
        assert!(parse_method(&[5, 0xff], true).unwrap_err().0.contains("none of the offered"));
        assert!(parse_method(&[4, 0], false).unwrap_err().0.contains("SOCKS5 server"));
        assert!(parse_method(b"HT", false).is_err(), "an HTTP proxy answering");
    }

    #[test]
    fn password_request_and_status() {
        let mut buf = Vec::new();
        encode_password("alice", "pw", &mut buf).unwrap();
        assert_eq!(buf, b"\x01\x05alice\x02pw");
        let mut buf = Vec::new();
        encode_password("u", "", &mut buf).unwrap();
        assert_eq!(buf, b"\x01\x01u\x00");
        assert!(encode_password("", "pw", &mut Vec::new()).is_err());
        assert!(encode_password(&"u".repeat(256), "pw", &mut Vec::new()).is_err());
        assert!(encode_password("u", &"p".repeat(256), &mut Vec::new()).is_err());
        encode_password(&"u".repeat(255), &"p".repeat(255), &mut Vec::new()).unwrap();
        assert_eq!(parse_password_status(&[1]), Ok(None));
        assert_eq!(parse_password_status(&[1, 0]), Ok(Some(2)));
        assert!(parse_password_status(&[1, 1]).unwrap_err().0.contains("rejected"));
        assert!(parse_password_status(&[5, 0]).is_err());
    }

    #[test]
    fn connect_request_for_each_address_type() {
        let mut buf = Vec::new();
        encode_connect(Target::Addr("10.1.2.3:443".parse().unwrap()), &mut buf).unwrap();
        assert_eq!(buf, [5, 1, 0, 1, 10, 1, 2, 3, 1, 187]);
        let mut buf = Vec::new();
        encode_connect(Target::Addr("[::1]:80".parse().unwrap()), &mut buf).unwrap();
        assert_eq!(buf[..4], [5, 1, 0, 4]);
        assert_eq!(buf[4..20], std::net::Ipv6Addr::LOCALHOST.octets());
        assert_eq!(buf[20..], [0, 80]);
        let mut buf = Vec::new();
        encode_connect(Target::Name("example.com", 8080), &mut buf).unwrap();
        assert_eq!(buf, b"\x05\x01\x00\x03\x0bexample.com\x1f\x90");
        assert!(encode_connect(Target::Name("", 1), &mut Vec::new()).is_err());
        assert!(encode_connect(Target::Name(&"a".repeat(256), 1), &mut Vec::new()).is_err());
    }

    #[test]
    fn reply_is_parsed_exactly_and_incrementally() {
        let v4 = [5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90];
        for n in 0..v4.len() {
            assert_eq!(parse_reply(&v4[..n]), Ok(None), "{n} bytes");
        }
        assert_eq!(parse_reply(&v4), Ok(Some((Some("127.0.0.1:8080".parse().unwrap()), 10))));
        // Tunnelled bytes after the reply are not consumed.
        let mut more = v4.to_vec();
        more.extend_from_slice(b"\x16\x03\x01");
        assert_eq!(parse_reply(&more).unwrap().unwrap().1, 10);
        let mut v6 = vec![5, 0, 0, 4];
        v6.extend_from_slice(&[0; 15]);
        v6.extend_from_slice(&[1, 0, 80]);
        assert_eq!(parse_reply(&v6), Ok(Some((Some("[::1]:80".parse().unwrap()), 22))));
        let name = b"\x05\x00\x00\x03\x04host\x00\x50";
        assert_eq!(parse_reply(&name[..5]), Ok(None));
        assert_eq!(parse_reply(&name[..9]), Ok(None));
        assert_eq!(parse_reply(name), Ok(Some((None, 11))));
    }

    #[test]
    fn reply_codes_become_clear_errors() {
        for (code, text) in [
            (1, "general failure"),
            (2, "not allowed"),
            (3, "network unreachable"),
            (4, "host unreachable"),
            (5, "connection refused"),
            (6, "TTL expired"),
            (7, "command not supported"),
            (8, "address type not supported"),
            (9, "unknown"),
        ] {
            let err = parse_reply(&[5, code, 0, 1]).unwrap_err();
            assert!(err.0.contains(text), "{code}: {err:?}");
        }
        assert!(parse_reply(&[5, 0, 0, 9, 0, 0]).unwrap_err().0.contains("address type"));
        assert!(parse_reply(b"HTTP/1.1 400").is_err());
    }
}
