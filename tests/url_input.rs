//! URLs as users type them (issue 12): what goes on the wire for a URL with
//! spaces, non-ASCII text, a fragment or credentials, and what the errors
//! say, against scripted servers.
//!
//! Each test runs under `common::with_deadline`, so a hang fails instead of
//! blocking the suite.

mod common;

use std::time::Duration;

use common::{Request, Server};
use smolreq::{Client, ErrorKind, Uri};

const DEADLINE: Duration = Duration::from_secs(15);

/// `Basic base64("user:p@ss")`.
const USER_P_AT_SS: &str = "Basic dXNlcjpwQHNz";

fn run<F, T>(f: impl FnOnce() -> F + Send + 'static) -> T
where
    F: Future<Output = T>,
    T: Send + 'static,
{
    common::with_deadline(DEADLINE, move || smol::block_on(f()))
}

/// A keep-alive server answering every request with `reply(request)`:
/// a status and headers, body `ok`.
fn answering(reply: impl Fn(&Request) -> (u16, Vec<(&'static str, String)>) + Send + Sync + 'static) -> Server {
    Server::start(move |conn| {
        while let Some(request) = conn.read_request() {
            let (status, headers) = reply(&request);
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            conn.respond(status, &headers, b"ok");
        }
    })
}

fn ok_server() -> Server {
    answering(|_| (200, vec![]))
}

/// Sends a GET to `url` and reads the body; returns the final URL.
fn get(url: String) -> String {
    run(move || async move {
        let resp = Client::new().get(url).send().await.expect("request succeeds");
        let url = resp.url().to_string();
        assert_eq!(resp.text().await.unwrap(), "ok");
        url
    })
}

#[test]
fn spaces_and_non_ascii_go_out_percent_encoded() {
    let server = ok_server();
    let final_url = get(server.url("/café/a b?q=日本 x&y=\"z\"&it's#frag ment"));
    let received = server.received();
    assert_eq!(received[0].target, "/caf%C3%A9/a%20b?q=%E6%97%A5%E6%9C%AC%20x&y=%22z%22&it%27s");
    assert_eq!(final_url, server.url("/caf%C3%A9/a%20b?q=%E6%97%A5%E6%9C%AC%20x&y=%22z%22&it%27s"));
}

#[test]
fn escapes_are_kept_and_dot_segments_resolved() {
    let server = ok_server();
    get(server.url("/a/./b/../c%2Fd%20e?x=%26"));
    assert_eq!(server.received()[0].target, "/a/c%2Fd%20e?x=%26");
}

#[test]
fn a_typed_url_is_trimmed_and_normalised() {
    let server = ok_server();
    let typed = format!("  HTTP://LOCALHOST:{}/Path\n", server.addr().port());
    get(typed);
    let request = &server.received()[0];
    assert_eq!(request.target, "/Path");
    assert_eq!(request.header("host"), Some(format!("localhost:{}", server.addr().port()).as_str()));
}

#[test]
fn credentials_in_the_url_become_basic_auth() {
    let server = ok_server();
    let url = format!("http://user:p%40ss@{}/x", server.addr());
    let final_url = get(url);
    let request = &server.received()[0];
    assert_eq!(request.header_all("authorization"), vec![USER_P_AT_SS], "{}", request.head_str());
    assert_eq!(request.header_all("host"), vec![server.addr().to_string()], "no userinfo in Host");
    assert_eq!(request.target, "/x");
    assert_eq!(final_url, server.url("/x"), "the response URL has no userinfo");
}

#[test]
fn a_user_name_alone_is_sent_with_an_empty_password() {
    let server = ok_server();
    get(format!("http://us%20er@{}/", server.addr()));
    assert_eq!(server.received()[0].header("authorization"), Some("Basic dXMgZXI6"), "base64 of \"us er:\"");
}

#[test]
fn an_authorization_set_by_the_caller_wins_over_the_url() {
    let server = ok_server();
    let url = format!("http://user:p%40ss@{}/", server.addr());
    run(move || async move {
        let resp = Client::new().get(url).header("authorization", "Bearer token").send().await.unwrap();
        resp.bytes().await.unwrap();
    });
    assert_eq!(server.received()[0].header_all("authorization"), vec!["Bearer token"]);
}

#[test]
fn uri_values_are_accepted_and_their_credentials_used() {
    let server = ok_server();
    let uri: Uri = format!("http://user:p%40ss@{}/u", server.addr()).parse().unwrap();
    run(move || async move {
        let client = Client::new();
        client.get(&uri).send().await.unwrap().bytes().await.unwrap();
        let resp = client.get(uri).send().await.unwrap();
        assert!(!resp.url().to_string().contains("p%40ss"), "{}", resp.url());
        resp.bytes().await.unwrap();
    });
    let received = server.received();
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|r| r.header("authorization") == Some(USER_P_AT_SS)));
}

#[test]
fn an_http_request_with_credentials_in_its_uri_gets_basic_auth() {
    let server = ok_server();
    let uri = format!("http://user:p%40ss@{}/h", server.addr());
    run(move || async move {
        let request = smolreq::http::Request::get(uri).body(Vec::new()).unwrap();
        Client::new().execute(request).await.unwrap().bytes().await.unwrap();
    });
    assert_eq!(server.received()[0].header("authorization"), Some(USER_P_AT_SS));
}

#[test]
fn url_credentials_stay_on_a_same_origin_redirect() {
    let server = answering(|r| match r.target.as_str() {
        "/start" => (302, vec![("Location", "/next".to_owned())]),
        _ => (200, vec![]),
    });
    get(format!("http://user:p%40ss@{}/start", server.addr()));
    let received = server.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].target, "/next");
    assert_eq!(received[1].header("authorization"), Some(USER_P_AT_SS));
}

#[test]
fn url_credentials_are_dropped_on_a_cross_origin_redirect() {
    let other = ok_server();
    let location = other.url("/landing");
    let first = answering(move |_| (302, vec![("Location", location.clone())]));
    get(format!("http://user:p%40ss@{}/start", first.addr()));
    assert_eq!(first.received()[0].header("authorization"), Some(USER_P_AT_SS));
    let at_other = other.received();
    assert_eq!(at_other.len(), 1);
    assert_eq!(at_other[0].header("authorization"), None, "{}", at_other[0].head_str());
}

#[test]
fn credentials_in_a_location_are_never_used() {
    let server = answering(|r| match r.target.as_str() {
        "/start" => (302, vec![("Location", "/next".to_owned())]),
        _ => (200, vec![]),
    });
    let location = format!("http://evil:pw@{}/next", server.addr());
    let redirecting = answering(move |_| (302, vec![("Location", location.clone())]));
    let final_url = get(redirecting.url("/start"));
    let at_server = server.received();
    assert_eq!(at_server.len(), 1);
    assert_eq!(at_server[0].header("authorization"), None, "{}", at_server[0].head_str());
    assert!(!final_url.contains("pw"), "{final_url}");
}

#[test]
fn url_errors_name_what_and_where() {
    let cases = [
        ("http://host:80a/", r#"invalid URL: invalid port "80a" in "http://host:80a/""#),
        ("ftp://127.0.0.1/", r#"invalid URL: unsupported scheme "ftp" (only http and https)"#),
        ("http://", r#"invalid URL: empty host in "http://""#),
        ("http:/x", r#"invalid URL: URL has no host in "http:/x" (expected "//" after "http:")"#),
        ("127.0.0.1:1/x", r#"invalid URL: URL has no scheme in "127.0.0.1:1/x" (expected http:// or https://)"#),
        ("http://exa mple/", r#"invalid URL: invalid character ' ' in the host of "http://exa mple/""#),
    ];
    let errors = run(move || async move {
        let client = Client::new();
        let mut errors = Vec::new();
        for (url, _) in cases {
            errors.push(client.get(url).send().await.unwrap_err());
        }
        errors
    });
    for ((url, expected), err) in cases.iter().zip(errors) {
        assert_eq!(err.kind(), ErrorKind::Url, "{url}: {err:?}");
        assert_eq!(err.to_string(), *expected, "{url}");
    }
}

/// Sends a GET to `url` through a connector that dials `server` whatever
/// the host; returns the host the connector was asked for.
fn get_through_connector(server: &Server, url: &'static str) -> smolreq::Result<String> {
    let addr = server.addr();
    let asked = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = asked.clone();
    let client = Client::builder()
        .connector(move |dest: smolreq::Destination| {
            *seen.lock().unwrap() = dest.host().to_owned();
            async_io::Async::<std::net::TcpStream>::connect(addr)
        })
        .build()
        .unwrap();
    run(move || async move { client.get(url).send().await?.bytes().await })?;
    Ok(asked.lock().unwrap().clone())
}

#[test]
#[cfg(feature = "idna")]
fn a_non_ascii_host_goes_out_in_its_punycode_form() {
    let server = ok_server();
    assert_eq!(get_through_connector(&server, "http://Bücher.example/ä").unwrap(), "xn--bcher-kva.example");
    let request = &server.received()[0];
    assert_eq!(request.header("host"), Some("xn--bcher-kva.example"));
    assert_eq!(request.target, "/%C3%A4");
}

#[test]
#[cfg(not(feature = "idna"))]
fn a_non_ascii_host_is_an_error_naming_the_idna_feature() {
    let server = ok_server();
    let err = get_through_connector(&server, "http://bücher.example/").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid URL: non-ASCII host name \"bücher.example\" in \"http://bücher.example/\": IDNA is not supported in \
         this build (enable the `idna` feature of smolreq); use the punycode form xn--..."
    );
    assert_eq!(server.connections(), 0, "nothing is sent");
}

#[test]
fn the_password_is_never_printed() {
    // A server that answers garbage: the request fails after the URL was used.
    let server = Server::start(|conn| {
        conn.read_request();
        conn.write(b"garbage\r\n\r\n");
    });
    let addr = server.addr();
    let texts = run(move || async move {
        let client = Client::new();
        let builder = client.get(format!("http://user:s3cr3t@{addr}/"));
        let mut texts = vec![format!("{builder:?}")];
        let err = builder.send().await.unwrap_err();
        texts.extend([err.to_string(), format!("{err:?}")]);
        let bad = client.get(format!("http://user:s3cr3t@{addr}:x/")).send().await.unwrap_err();
        texts.extend([bad.to_string(), format!("{bad:?}")]);
        texts
    });
    for text in texts {
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(!text.contains("dXNlcjpzM2NyM3Q"), "the Basic value is a secret too: {text}");
    }
}
