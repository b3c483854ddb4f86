use crate::{local_name, substitute, Url, UrlError};

#[test]
fn substitute_first_occurrence_only() {
    let mac = Some("52:54:00:12:34:56");
    let uuid = Some("c7c29fe0-cf90-4024-8ba3-208387fc7ac6");
    let cases = [
        (
            "https://example.com/{UUID}/foo.apkovl.tar.gz",
            mac,
            uuid,
            "https://example.com/c7c29fe0-cf90-4024-8ba3-208387fc7ac6/foo.apkovl.tar.gz",
        ),
        (
            "http://h/{MAC}/{MAC}-{UUID}-{UUID}",
            mac,
            uuid,
            "http://h/52:54:00:12:34:56/{MAC}-c7c29fe0-cf90-4024-8ba3-208387fc7ac6-{UUID}",
        ),
        ("http://h/{MAC}.tar.gz", None, None, "http://h/.tar.gz"),
        ("http://h/{mac}/$MAC", mac, uuid, "http://h/{mac}/$MAC"),
        (
            "http://h/{UUID}",
            mac,
            Some("a/b?c#d e"),
            "http://h/a%2Fb%3Fc%23d%20e",
        ),
    ];
    for (url, mac, uuid, expected) in cases {
        assert_eq!(substitute(url, mac, uuid), expected, "{url}");
    }
}

#[test]
fn local_name_cases() {
    let cases = [
        (
            "http://example.tld/some/path/to/file?some=queries&forExample=for:Validation",
            "file",
        ),
        ("https://h/x/host.apkovl.tar.gz", "host.apkovl.tar.gz"),
        ("https://h/a?b=c/d.tar.gz", "a"),
        ("https://h/a.tar.gz#frag/x", "a.tar.gz"),
        ("https://h/dir/", "apkovl.tar.gz"),
        ("https://h", "apkovl.tar.gz"),
        ("https://h/..", "apkovl.tar.gz"),
        ("https://h/.", "apkovl.tar.gz"),
        ("https://h/?x=1", "apkovl.tar.gz"),
    ];
    for (url, expected) in cases {
        assert_eq!(local_name(url), expected, "{url}");
    }
}

#[test]
fn url_parse_cases() {
    let url = Url::parse("HTTP://Example.COM:8080/a/b?c=d#frag").unwrap();
    assert_eq!(
        url,
        Url {
            https: false,
            host: "example.com".into(),
            port: 8080,
            target: "/a/b?c=d".into()
        }
    );
    assert_eq!(url.authority(), "example.com:8080");
    let url = Url::parse("https://h?x").unwrap();
    assert_eq!(
        (url.port, url.target.as_str(), url.authority()),
        (443, "/?x", "h".into())
    );

    assert_eq!(Url::parse("ftp://h/x"), Err(UrlError::Ftp));
    assert_eq!(
        UrlError::Ftp.to_string(),
        "ftp:// apkovl URLs are not supported; use http:// or https://"
    );
    for bad in [
        "file:///x",
        "h/x",
        "http:///x",
        "http://h:0/",
        "http://h:99999/",
        "http://u:p@h/",
        "http://[::1]/",
        "http://h/a b",
    ] {
        assert!(Url::parse(bad).is_err(), "{bad}");
    }
}

/// Fuzz target `net_config`: `rsplit_once(':')` took `http://a:1:80/x` as host
/// `a:1`, port 80, which printed back as `a:1:80` and a relative redirect from it
/// went to host `a`, port 1; `http://fe80::1/x` passed as host `fe80:`, port 1.
#[test]
fn url_host_with_a_colon_is_refused() {
    for bad in [
        "http://a:1:80/x",
        "http://fe80::1/x",
        "http://a::",
        "https://::1/",
    ] {
        assert_eq!(
            Url::parse(bad),
            Err(UrlError::Authority(bad.to_owned())),
            "{bad}"
        );
    }
    let base = Url::parse("http://h/dir/x").unwrap();
    assert!(base.join("//a:1:80/y").is_err());
}

/// Fuzz target `net_config`: `u16::from_str` takes a leading `+`.
#[test]
fn url_port_with_a_sign_is_refused() {
    for bad in ["http://h:+80/", "http://h:-1/", "http://h: 80/"] {
        assert!(Url::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(Url::parse("http://h:080/").map(|u| u.port), Ok(80));
}

#[test]
fn url_join_cases() {
    let base = Url::parse("https://h:8443/dir/file?q=1").unwrap();
    let cases = [
        ("http://other/x", "http", "other", "/x"),
        ("//other:9/y", "https", "other:9", "/y"),
        ("/abs?z", "https", "h:8443", "/abs?z"),
        ("rel.tar.gz", "https", "h:8443", "/dir/rel.tar.gz"),
        ("?p=2", "https", "h:8443", "/dir/file?p=2"),
        // A `://` inside a query or path does not make the reference absolute (issue 8d).
        ("/b?next=http://x/", "https", "h:8443", "/b?next=http://x/"),
        (
            "b?next=http://x/",
            "https",
            "h:8443",
            "/dir/b?next=http://x/",
        ),
        ("a/http://x", "https", "h:8443", "/dir/a/http://x"),
        // Scheme names are case-insensitive and may hold `+ - .` after the first letter.
        ("HTTPS://Other/z", "https", "other", "/z"),
        // Fragment only: the same resource.
        ("#frag", "https", "h:8443", "/dir/file?q=1"),
        ("", "https", "h:8443", "/dir/file?q=1"),
        // Dot segments (RFC 3986 section 5.2.4), never above the root.
        ("../up", "https", "h:8443", "/up"),
        ("./same", "https", "h:8443", "/dir/same"),
        ("../../../top", "https", "h:8443", "/top"),
        ("/a/./b/../c", "https", "h:8443", "/a/c"),
        ("sub/..", "https", "h:8443", "/dir/"),
        // `:` after a `/` is not a scheme.
        ("./x:y", "https", "h:8443", "/dir/x:y"),
        ("1x:y", "https", "h:8443", "/dir/1x:y"),
    ];
    for (location, scheme, authority, target) in cases {
        let joined = base.join(location).unwrap();
        assert_eq!(joined.https, scheme == "https", "{location}");
        assert_eq!(joined.authority(), authority, "{location}");
        assert_eq!(joined.target, target, "{location}");
    }
    // References that do start with a scheme are absolute, and only http(s) is accepted.
    for (location, err) in [
        ("ftp://h/x", UrlError::Ftp),
        ("mailto:a@b", UrlError::Scheme("mailto:a@b".into())),
        ("x+y.z-1:/p", UrlError::Scheme("x+y.z-1:/p".into())),
    ] {
        assert_eq!(base.join(location), Err(err), "{location}");
    }
}
