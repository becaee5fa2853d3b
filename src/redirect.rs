//! Resolving a `Location` against the URL it came from (RFC 3986 section 5).

use http::Uri;

/// Resolves `location` (absolute, scheme-relative, absolute-path, relative
/// path or query-only) against `base`. The fragment is dropped. Returns
/// `None` when the result is not a valid http(s) URL.
pub(crate) fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    let location = location.trim();
    if location.is_empty() || location.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return None;
    }
    let location = location.split('#').next().unwrap_or("");
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    let resolved = if has_scheme(location) {
        location.to_owned()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else {
        let (ref_path, ref_query) = match location.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (location, None),
        };
        let base_path = base.path();
        let path = if ref_path.is_empty() {
            base_path.to_owned()
        } else if ref_path.starts_with('/') {
            remove_dot_segments(ref_path)
        } else {
            let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
            let dir = if dir.is_empty() { "/" } else { dir };
            remove_dot_segments(&format!("{dir}{ref_path}"))
        };
        let query = match (ref_path.is_empty(), ref_query) {
            (_, Some(q)) => Some(q),
            (true, None) => base.query(),
            (false, None) => None,
        };
        match query {
            Some(q) => format!("{scheme}://{authority}{path}?{q}"),
            None => format!("{scheme}://{authority}{path}"),
        }
    };
    let uri: Uri = resolved.parse().ok()?;
    uri.host()?;
    Some(uri)
}

fn has_scheme(s: &str) -> bool {
    match s.find(':') {
        Some(i) if i > 0 => {
            let scheme = &s[..i];
            scheme.as_bytes()[0].is_ascii_alphabetic()
                && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
        }
        _ => false,
    }
}

/// RFC 3986 section 5.2.4, for a path that starts with `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => trailing_slash = i == last,
            ".." => {
                out.pop();
                trailing_slash = i == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut result = String::with_capacity(path.len());
    for s in &out {
        result.push('/');
        result.push_str(s);
    }
    if trailing_slash || result.is_empty() {
        result.push('/');
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(base: &str, loc: &str) -> Option<String> {
        resolve(&base.parse().unwrap(), loc).map(|u| u.to_string())
    }

    #[test]
    fn absolute_location() {
        assert_eq!(r("http://a/b/c", "http://x:81/y?z").unwrap(), "http://x:81/y?z");
    }

    #[test]
    fn scheme_relative_location() {
        assert_eq!(r("http://a/b", "//x/y").unwrap(), "http://x/y");
    }

    #[test]
    fn absolute_path_location() {
        assert_eq!(r("http://a:8080/b/c?q", "/d?e").unwrap(), "http://a:8080/d?e");
    }

    #[test]
    fn relative_path_location() {
        assert_eq!(r("http://a/b/c/d?q", "g").unwrap(), "http://a/b/c/g");
        assert_eq!(r("http://a/b/c/d", "./g/").unwrap(), "http://a/b/c/g/");
        assert_eq!(r("http://a/b/c/d", "../g").unwrap(), "http://a/b/g");
        assert_eq!(r("http://a/b/c/d", "../../../../g").unwrap(), "http://a/g");
        assert_eq!(r("http://a/b/c/d", "..").unwrap(), "http://a/b/");
        assert_eq!(r("http://a", "g").unwrap(), "http://a/g");
    }

    #[test]
    fn query_only_location() {
        assert_eq!(r("http://a/b/c?x", "?y").unwrap(), "http://a/b/c?y");
    }

    #[test]
    fn fragment_is_dropped() {
        assert_eq!(r("http://a/b", "/c#frag").unwrap(), "http://a/c");
        assert_eq!(r("http://a/b?q", "#frag").unwrap(), "http://a/b?q");
    }

    #[test]
    fn invalid_locations() {
        assert_eq!(r("http://a/b", ""), None);
        assert_eq!(r("http://a/b", "/c\r\nX: y"), None);
        assert_eq!(r("http://a/b", "http://"), None);
        assert_eq!(r("http://a/b", "/a b"), None);
    }
}
