//! `--metrics-listen ADDR` (send, worker): the flag, declared once, and
//! its parser: a socket address, with a warning on stderr when it is not
//! loopback, since /metrics has no authentication there.

use std::ffi::OsStr;
use std::net::SocketAddr;

use clap::builder::TypedValueParser;
use clap::Args;

/// `--metrics-listen ADDR`.
#[derive(Debug, Args, Clone, Copy)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics while running (no authentication: bind to
    /// loopback or a private address; port 0 picks one, said on stderr): outcomes and durations
    /// per app, connections, and for `apns worker` apns_queue_pending (jobs not yet delivered
    /// plus delivered without a result).
    #[arg(long, value_name = "ADDR", value_parser = MetricsListen)]
    pub metrics_listen: Option<SocketAddr>,
}

/// The value parser of every `--metrics-listen`: checking here, where the
/// flag is read, warns for every command that takes it.
#[derive(Clone, Copy, Debug)]
pub struct MetricsListen;

impl TypedValueParser for MetricsListen {
    type Value = SocketAddr;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<SocketAddr, clap::Error> {
        let text = value.to_string_lossy();
        let addr: SocketAddr = text.trim().parse().map_err(|_| {
            let flag = arg.map_or_else(|| "...".to_string(), |a| a.to_string());
            cmd.clone().error(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value '{text}' for '{flag}': expected an address and port such as 127.0.0.1:9100"),
            )
        })?;
        if let Some(line) = warning(addr) {
            eprintln!("{line}");
        }
        Ok(addr)
    }
}

/// The one-line warning for `addr`, unless it is loopback.
pub fn warning(addr: SocketAddr) -> Option<String> {
    if addr.ip().is_loopback() {
        return None;
    }
    Some(format!(
        "apns: warning: --metrics-listen {addr} serves /metrics without authentication to anyone who can reach that address; bind to loopback (127.0.0.1:{port}) or to a private address only your monitoring reaches",
        port = addr.port()
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_loopback_is_quiet() {
        for quiet in ["127.0.0.1:9100", "[::1]:0", "127.0.0.2:1"] {
            assert_eq!(super::warning(quiet.parse().unwrap()), None, "{quiet}");
        }
        for loud in ["0.0.0.0:9100", "[::]:9100", "10.0.0.5:9100", "192.0.2.1:1"] {
            let line = super::warning(loud.parse().unwrap()).unwrap();
            assert!(line.contains(loud) && !line.contains('\n'), "{line}");
        }
    }
}
