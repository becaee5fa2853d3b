//! Resolving a `Location` against the URL it came from: RFC 3986 section
//! 5.2, exactly (strict parser, `remove_dot_segments` on every form).

use http::Uri;

/// Why a `Location` cannot be followed: it is not a URL reference.
pub(crate) const INVALID: &str = "invalid Location in redirect";
/// Why a `Location` cannot be followed: its scheme is not http(s).
pub(crate) const UNSUPPORTED_SCHEME: &str = "redirect to a scheme other than http:// or https:// cannot be followed";

/// Resolves `location`, the text of a `Location` header, against `base`.
/// The fragment is dropped (it is never sent). Fails with [`INVALID`] or [`UNSUPPORTED_SCHEME`] when the
/// result is not an http(s) URL to fetch.
pub(crate) fn resolve(base: &Uri, location: &str) -> Result<Uri, &'static str> {
    // The caller's `location` is a header value's `to_str`: visible ASCII,
    // spaces and tabs, so ASCII trimming is all the trimming there is.
    let location = location.trim_ascii();
    if location.is_empty() || location.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(INVALID);
    }
    let (Some(scheme), Some(authority)) = (base.scheme_str(), base.authority()) else {
        return Err(INVALID);
    };
    let base = Reference {
        scheme: Some(scheme),
        authority: Some(authority.as_str()),
        path: base.path(),
        query: base.query(),
        fragment: None,
    };
    let mut target = resolve_reference(&base, &Reference::parse(location));
    let http = target.scheme.is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
    if !http {
        return Err(UNSUPPORTED_SCHEME);
    }
    if target.authority.is_none_or(str::is_empty) {
        return Err(INVALID); // `http:g` is a valid reference, but no URL to fetch
    }
    target.fragment = None;
    match Uri::try_from(target.compose()) {
        Ok(uri) if uri.scheme().is_some() && uri.host().is_some() => Ok(uri),
        _ => Err(INVALID),
    }
}

/// A URI reference split into its five components (RFC 3986 section 3).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference<'a, P = &'a str> {
    scheme: Option<&'a str>,
    authority: Option<&'a str>,
    path: P,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

impl<'a> Reference<'a> {
    /// Splits a reference as the regular expression of RFC 3986 appendix B
    /// does: `^(([^:/?#]+):)?(//([^/?#]*))?([^?#]*)(\?([^#]*))?(#(.*))?`. A
    /// would-be scheme that is not `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`
    /// makes the whole reference a relative path.
    fn parse(s: &'a str) -> Reference<'a> {
        let (rest, fragment) = match split_at(s, b'#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (s, None),
        };
        let (rest, query) = match split_at(rest, b'?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (scheme, rest) = match rest.bytes().position(|b| b == b':' || b == b'/') {
            Some(i) if rest.as_bytes()[i] == b':' && is_scheme(&rest[..i]) => (Some(&rest[..i]), &rest[i + 1..]),
            _ => (None, rest),
        };
        let (authority, path) = match rest.strip_prefix("//") {
            Some(rest) => {
                let end = find(rest, b'/').unwrap_or(rest.len());
                (Some(&rest[..end]), &rest[end..])
            }
            None => (None, rest),
        };
        Reference { scheme, authority, path, query, fragment }
    }
}

// Searches for ASCII bytes (never inside a multi-byte character, so the
// positions are character boundaries): simple byte loops, where `char`
// patterns would each link a searcher.

/// The first position of `b` in `s`.
fn find(s: &str, b: u8) -> Option<usize> {
    s.bytes().position(|c| c == b)
}

/// The last position of `b` in `s`.
fn rfind(s: &str, b: u8) -> Option<usize> {
    s.bytes().rposition(|c| c == b)
}

/// `s` split around its first `b`.
fn split_at(s: &str, b: u8) -> Option<(&str, &str)> {
    find(s, b).map(|i| (&s[..i], &s[i + 1..]))
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
}

/// RFC 3986 section 5.2.2, the strict variant: a reference with a scheme
/// is absolute even when its scheme is the base's (`http:g` stays `http:g`).
fn resolve_reference<'a>(base: &Reference<'a>, r: &Reference<'a>) -> Reference<'a, String> {
    let (scheme, authority, path, query);
    if r.scheme.is_some() {
        (scheme, authority, path, query) = (r.scheme, r.authority, remove_dot_segments(r.path), r.query);
    } else if r.authority.is_some() {
        (scheme, authority, path, query) = (base.scheme, r.authority, remove_dot_segments(r.path), r.query);
    } else if r.path.is_empty() {
        (scheme, authority, path, query) = (base.scheme, base.authority, base.path.to_owned(), r.query.or(base.query));
    } else if r.path.starts_with('/') {
        (scheme, authority, path, query) = (base.scheme, base.authority, remove_dot_segments(r.path), r.query);
    } else {
        (scheme, authority, path, query) =
            (base.scheme, base.authority, remove_dot_segments(&merge(base, r.path)), r.query);
    }
    Reference { scheme, authority, path, query, fragment: r.fragment }
}

/// RFC 3986 section 5.2.3.
fn merge(base: &Reference<'_>, path: &str) -> String {
    if base.authority.is_some() && base.path.is_empty() {
        return format!("/{path}");
    }
    let dir = &base.path[..rfind(base.path, b'/').map_or(0, |i| i + 1)];
    format!("{dir}{path}")
}

/// RFC 3986 section 5.2.4, step by step over an input buffer.
pub(crate) fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output = String::with_capacity(path.len());
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../").or_else(|| input.strip_prefix("./")) {
            input = rest; // A
        } else if input.starts_with("/./") {
            input = &input[2..]; // B
        } else if input == "/." {
            input = "/"; // B
        } else if input.starts_with("/../") || input == "/.." {
            // C: replace the prefix with "/" and drop the last output segment.
            input = if input == "/.." { "/" } else { &input[3..] };
            output.truncate(rfind(&output, b'/').unwrap_or(0));
        } else if input == "." || input == ".." {
            input = ""; // D
        } else {
            // E: move the first segment (with its leading "/", if any).
            let start = usize::from(input.starts_with('/'));
            let end = find(&input[start..], b'/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    output
}

impl Reference<'_, String> {
    /// RFC 3986 section 5.3, component recomposition.
    fn compose(&self) -> String {
        let mut out = String::new();
        if let Some(scheme) = self.scheme {
            out += scheme;
            out += ":";
        }
        if let Some(authority) = self.authority {
            out += "//";
            out += authority;
        }
        out += &self.path;
        if let Some(query) = self.query {
            out += "?";
            out += query;
        }
        if let Some(fragment) = self.fragment {
            out += "#";
            out += fragment;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(base: &str, loc: &str) -> Option<String> {
        resolve(&base.parse().unwrap(), loc).map(|u| u.to_string()).ok()
    }

    /// The resolution of RFC 3986 itself, fragments included.
    fn rfc(reference: &str) -> String {
        let base = Reference::parse("http://a/b/c/d;p?q");
        resolve_reference(&base, &Reference::parse(reference)).compose()
    }

    /// Every example of RFC 3986 section 5.4.1.
    #[test]
    fn rfc3986_normal_examples() {
        let examples = [
            ("g:h", "g:h"),
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q#s"),
            ("g#s", "http://a/b/c/g#s"),
            ("g?y#s", "http://a/b/c/g?y#s"),
            (";x", "http://a/b/c/;x"),
            ("g;x", "http://a/b/c/g;x"),
            ("g;x?y#s", "http://a/b/c/g;x?y#s"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../", "http://a/"),
            ("../../g", "http://a/g"),
        ];
        for (reference, expected) in examples {
            assert_eq!(rfc(reference), expected, "reference {reference:?}");
        }
    }

    /// Every example of RFC 3986 section 5.4.2 (strict parser).
    #[test]
    fn rfc3986_abnormal_examples() {
        let examples = [
            ("../../../g", "http://a/g"),
            ("../../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            (".g", "http://a/b/c/.g"),
            ("g..", "http://a/b/c/g.."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("./g/.", "http://a/b/c/g/"),
            ("g/./h", "http://a/b/c/g/h"),
            ("g/../h", "http://a/b/c/h"),
            ("g;x=1/./y", "http://a/b/c/g;x=1/y"),
            ("g;x=1/../y", "http://a/b/c/y"),
            ("g?y/./x", "http://a/b/c/g?y/./x"),
            ("g?y/../x", "http://a/b/c/g?y/../x"),
            ("g#s/./x", "http://a/b/c/g#s/./x"),
            ("g#s/../x", "http://a/b/c/g#s/../x"),
            ("http:g", "http:g"),
        ];
        for (reference, expected) in examples {
            assert_eq!(rfc(reference), expected, "reference {reference:?}");
        }
    }

    /// The same examples through `resolve`, which drops the fragment and
    /// refuses what is not an http(s) URL with a host.
    #[test]
    fn rfc3986_examples_through_resolve() {
        let base = "http://a/b/c/d;p?q";
        assert_eq!(r(base, "g#s").unwrap(), "http://a/b/c/g");
        assert_eq!(r(base, "#s").unwrap(), "http://a/b/c/d;p?q");
        assert_eq!(r(base, "../../../g").unwrap(), "http://a/g");
        assert_eq!(r(base, "g;x=1/../y").unwrap(), "http://a/b/c/y");
        assert_eq!(r(base, "g:h"), None);
        assert_eq!(r(base, "http:g"), None);
    }

    #[test]
    fn remove_dot_segments_follows_the_rfc_walkthrough() {
        // The two worked examples of section 5.2.4.
        assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
        assert_eq!(remove_dot_segments("mid/content=5/../6"), "mid/6");
        assert_eq!(remove_dot_segments(""), "");
        assert_eq!(remove_dot_segments("/"), "/");
        assert_eq!(remove_dot_segments("/.."), "/");
        assert_eq!(remove_dot_segments("/a/.."), "/");
    }

    #[test]
    fn absolute_location() {
        assert_eq!(r("http://a/b/c", "http://x:81/y?z").unwrap(), "http://x:81/y?z");
        // Dot segments are removed from every form, absolute ones too.
        assert_eq!(r("http://a/b/c", "http://x/y/../z/./w").unwrap(), "http://x/z/w");
        assert_eq!(r("http://a/b/c", "HTTPS://x/").unwrap(), "https://x/");
    }

    #[test]
    fn scheme_relative_location() {
        assert_eq!(r("http://a/b", "//x/y").unwrap(), "http://x/y");
        assert_eq!(r("https://a/b", "//x/y/../z").unwrap(), "https://x/z");
        assert_eq!(r("http://a/b", "//x").unwrap(), "http://x/");
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
        assert_eq!(r("http://a/b", "ftp://x/"), None);
        assert_eq!(resolve(&"http://a/b".parse().unwrap(), "ftp://x/"), Err(UNSUPPORTED_SCHEME));
        assert_eq!(resolve(&"http://a/b".parse().unwrap(), "mailto:a@b"), Err(UNSUPPORTED_SCHEME));
        assert_eq!(resolve(&"http://a/b".parse().unwrap(), "http://"), Err(INVALID));
        assert_eq!(resolve(&"http://a/b".parse().unwrap(), "/a b"), Err(INVALID));
    }
}
