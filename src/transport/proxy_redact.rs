//! How a proxy value shows in errors: never its credentials.

/// A proxy value as an error may show it: `scheme://[redacted]@host:port`
/// when it has userinfo, the value itself when it parses as a plain
/// `http://host:port`, and otherwise only its scheme and length: in
/// `http://alice:S3cret` (no `@host`), "S3cret" reads as a port, and it is a
/// password.
pub fn redacted(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let with_scheme = |s: String| match scheme {
        Some(scheme) => format!("{scheme}://{s}"),
        None => s,
    };
    if let Some((_, after)) = rest.rsplit_once('@') {
        return with_scheme(format!("[redacted]@{after}"));
    }
    // No userinfo: shown only if it is plainly host[:port][/] with a
    // numeric port (text after a colon that is not a port may be a
    // password).
    let hostport = rest.strip_suffix('/').unwrap_or(rest);
    let plain = !hostport.is_empty()
        && !hostport.contains(['/', '?', '#', ' ', '%'])
        && match hostport.strip_prefix('[') {
            Some(v6) => v6
                .split_once(']')
                .is_some_and(|(_, p)| p.is_empty() || p.strip_prefix(':').is_some_and(is_port)),
            None => match hostport.split_once(':') {
                None => true,
                Some((_, p)) => is_port(p),
            },
        };
    if plain {
        with_scheme(hostport.to_string())
    } else {
        with_scheme(format!("[{} characters not shown]", rest.chars().count()))
    }
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}
