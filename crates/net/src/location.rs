//! apkovl URLs: `{MAC}`/`{UUID}` substitution, the local file name, and the small URL parser
//! the HTTP client needs.

/// Replaces the first `{MAC}` and then the first `{UUID}`, like Alpine's
/// `sed -e "s/{MAC}/$MAC_ADDRESS/" -e "s/{UUID}/$MACHINE_UUID/"` (no `g`).
///
/// A missing value substitutes the empty string, as the shell did with an unset variable, so
/// the URL still names the server the user configured (and usually gets a clear 404).
/// Values are percent-encoded except for unreserved characters and `:`: a MAC or a DMI UUID
/// never needs more, and a hostile DMI string cannot inject `/`, `?` or `#` into the URL.
pub fn substitute(url: &str, mac: Option<&str>, uuid: Option<&str>) -> String {
    let once = |text: &str, placeholder: &str, value: Option<&str>| {
        text.replacen(placeholder, &encode(value.unwrap_or("")), 1)
    };
    once(&once(url, "{MAC}", mac), "{UUID}", uuid)
}

fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The file name used for a URL's download: the last path segment, with the query string
/// (from the first `?`) and fragment dropped, as Alpine's `${url##*/}` + `${ovl%%\?*}`.
///
/// Unlike the shell, the query is cut *before* taking the segment (a `/` inside the query no
/// longer picks a bogus name), and an empty, `.` or `..` name, or one with control
/// characters, becomes `apkovl.tar.gz`: a `.gz` name keeps the unpacker on its gzip path.
pub fn local_name(url: &str) -> String {
    const DEFAULT: &str = "apkovl.tar.gz";
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let without_query = &url[..end];
    let path = match without_query.find("://") {
        Some(i) => {
            let rest = &without_query[i + 3..];
            rest.find('/').map_or("", |slash| &rest[slash..])
        }
        None => without_query,
    };
    let name = path.rsplit('/').next().unwrap_or("");
    if name.is_empty() || name == "." || name == ".." || name.chars().any(char::is_control) {
        DEFAULT.to_owned()
    } else {
        name.to_owned()
    }
}

/// A URL split into what an HTTP/1.1 request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`; the fragment is dropped.
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("ftp:// apkovl URLs are not supported; use http:// or https://")]
    Ftp,
    #[error("unsupported URL scheme in {0:?}; use http:// or https://")]
    Scheme(String),
    #[error("URL {0:?} has no host")]
    NoHost(String),
    #[error("URL {0:?} has a bad port")]
    Port(String),
    #[error("URL {0:?} carries credentials or an IPv6 literal, which are not supported")]
    Authority(String),
    #[error("URL {0:?} contains spaces or control characters")]
    Characters(String),
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, UrlError> {
        if url.chars().any(|c| c.is_control() || c == ' ') {
            return Err(UrlError::Characters(url.to_owned()));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| UrlError::Scheme(url.to_owned()))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            "ftp" => return Err(UrlError::Ftp),
            _ => return Err(UrlError::Scheme(url.to_owned())),
        };
        let rest = rest.split('#').next().unwrap_or("");
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        if authority.contains(['@', '[', ']']) {
            return Err(UrlError::Authority(url.to_owned()));
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, "")) => (host, default_port),
            Some((host, port)) => (
                host,
                // Digits only: `u16::from_str` also takes a leading `+`.
                Some(port)
                    .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|p| p.parse::<u16>().ok())
                    .filter(|p| *p != 0)
                    .ok_or_else(|| UrlError::Port(url.to_owned()))?,
            ),
            None => (authority, default_port),
        };
        if host.is_empty() {
            return Err(UrlError::NoHost(url.to_owned()));
        }
        // A colon left in the host is an unbracketed IPv6 literal or a second port
        // (`http://a:1:80/`): taken as a host it printed back as another host and
        // port, and a relative redirect went there (fuzz target `net_config`).
        if host.contains(':') {
            return Err(UrlError::Authority(url.to_owned()));
        }
        let target = if target.starts_with('/') {
            target.to_owned()
        } else {
            format!("/{target}")
        };
        Ok(Url {
            https,
            host: host.to_ascii_lowercase(),
            port,
            target,
        })
    }

    /// Resolves a `Location` header against this URL as RFC 3986 section 5.2 does: it is
    /// absolute only when it starts with a scheme (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    /// ":"`), so a `://` inside a query (`/b?next=http://x/`) stays part of a relative
    /// reference; `//host/x` is a network-path reference; anything else is a path, a query
    /// or a fragment resolved against this URL, with `.` and `..` segments removed.
    pub fn join(&self, location: &str) -> Result<Url, UrlError> {
        let location = location.trim();
        if has_scheme(location) {
            return Url::parse(location);
        }
        let scheme = if self.https { "https" } else { "http" };
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("{scheme}://{rest}"));
        }
        let reference = location.split('#').next().unwrap_or("");
        let (base_path, base_query) = match self.target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (self.target.as_str(), None),
        };
        let (ref_path, ref_query) = match reference.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (reference, None),
        };
        let (path, query) = if ref_path.is_empty() {
            (base_path.to_owned(), ref_query.or(base_query))
        } else if ref_path.starts_with('/') {
            (remove_dot_segments(ref_path), ref_query)
        } else {
            let dir = base_path.rsplit_once('/').map_or("", |(dir, _)| dir);
            (remove_dot_segments(&format!("{dir}/{ref_path}")), ref_query)
        };
        let target = match query {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        Url::parse(&format!("{scheme}://{}{target}", self.authority()))
    }

    /// `host` or `host:port` when the port is not the scheme's default (the `Host` header).
    pub fn authority(&self) -> String {
        let default_port = if self.https { 443 } else { 80 };
        if self.port == default_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// True when `reference` begins with `scheme ":"` (RFC 3986 section 3.1).
fn has_scheme(reference: &str) -> bool {
    let Some((scheme, _)) = reference.split_once(':') else {
        return false;
    };
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// RFC 3986 section 5.2.4 for an absolute path: drops `.` segments and lets `..` remove the
/// segment before it (never climbing above the root).
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    out.pop();
                }
                // A trailing `.` or `..` leaves a directory: keep the final slash.
                if i == last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    format!("/{}", out.join("/"))
}
