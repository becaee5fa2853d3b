//! The CONNECT request that opens a tunnel through an HTTP proxy (RFC 9110
//! section 9.3.6), sans-IO. Its response is an ordinary response head
//! (parsed with [`super::head`]); a 2xx ends the HTTP exchange, and every
//! byte after that head belongs to the tunnel (RFC 9110: a client ignores
//! any Content-Length or Transfer-Encoding in a successful CONNECT
//! response).

use super::ProtoError;

/// Encodes `CONNECT host:port HTTP/1.1` with its `Host` field, the
/// optional `Proxy-Authorization` value and `User-Agent`. `host` is a name
/// or an IP literal; an IPv6 literal gets brackets if it has none.
pub(crate) fn encode_connect(
    host: &str,
    port: u16,
    proxy_authorization: Option<&[u8]>,
    user_agent: Option<&[u8]>,
    buf: &mut Vec<u8>,
) -> Result<(), ProtoError> {
    let valid = |b: u8| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b);
    if host.is_empty() || !host.bytes().all(valid) {
        return Err(ProtoError::InvalidRequest("invalid host in CONNECT request"));
    }
    let field_ok = |v: &[u8]| v.iter().all(|&b| b != b'\r' && b != b'\n' && b != 0);
    if !proxy_authorization.is_none_or(field_ok) || !user_agent.is_none_or(field_ok) {
        return Err(ProtoError::InvalidRequest("forbidden byte in a CONNECT header field"));
    }
    let bracket = host.contains(':') && !host.starts_with('[');
    let mut authority = String::with_capacity(host.len() + 8);
    if bracket {
        authority.push('[');
    }
    authority.push_str(host);
    if bracket {
        authority.push(']');
    }
    authority.push(':');
    authority.push_str(&port.to_string());
    buf.extend_from_slice(b"CONNECT ");
    buf.extend_from_slice(authority.as_bytes());
    buf.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    buf.extend_from_slice(authority.as_bytes());
    buf.extend_from_slice(b"\r\n");
    if let Some(auth) = proxy_authorization {
        buf.extend_from_slice(b"Proxy-Authorization: ");
        buf.extend_from_slice(auth);
        buf.extend_from_slice(b"\r\n");
    }
    if let Some(agent) = user_agent {
        buf.extend_from_slice(b"User-Agent: ");
        buf.extend_from_slice(agent);
        buf.extend_from_slice(b"\r\n");
    }
    buf.extend_from_slice(b"\r\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Limits;
    use crate::proto::head::parse_response_head;

    fn connect(host: &str, port: u16, auth: Option<&[u8]>) -> Result<String, ProtoError> {
        let mut buf = Vec::new();
        encode_connect(host, port, auth, Some(b"smolreq"), &mut buf)?;
        Ok(String::from_utf8(buf).unwrap())
    }

    #[test]
    fn connect_request_names_the_origin_twice() {
        assert_eq!(
            connect("example.com", 443, None).unwrap(),
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: smolreq\r\n\r\n"
        );
        assert_eq!(
            connect("::1", 8443, Some(b"Basic dTpw")).unwrap(),
            "CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\nProxy-Authorization: Basic dTpw\r\nUser-Agent: smolreq\r\n\r\n"
        );
        assert!(connect("[::1]", 1, None).unwrap().starts_with("CONNECT [::1]:1 "));
    }

    #[test]
    fn connect_request_refuses_injection() {
        assert!(connect("a.example\r\nX: y", 443, None).is_err());
        assert!(connect("a b", 443, None).is_err());
        assert!(connect("", 443, None).is_err());
        assert!(connect("a.example", 443, Some(b"Basic x\r\nEvil: 1")).is_err());
    }

    #[test]
    fn bytes_after_a_2xx_head_are_left_for_the_tunnel() {
        let reply = b"HTTP/1.1 200 Connection established\r\nContent-Length: 5\r\n\r\n\x16\x03\x01\x00\x05";
        let (head, len) = parse_response_head(reply, &Limits::default()).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(&reply[len..], b"\x16\x03\x01\x00\x05");
    }
}
