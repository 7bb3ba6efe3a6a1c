//! The text `--help` shows after the flags: what a command prints, its
//! exit codes and examples. Every example line is a command in its own
//! right or continues one with `\`, and fits in 58 columns, so that clap,
//! which wraps this text at the terminal's width, never breaks one: pasted,
//! each runs as written.

/// `apns --help`: exit codes and the environment.
pub const APNS: &str = "EXIT CODES:
  0  every notification was accepted
  1  at least one notification was rejected by APNs
  2  usage or configuration error (bad flag, key, token or payload; invalid lines; a topic or push type the certificate does not allow)
  3  APNs could not be reached or the connection failed
  4  an output (--results, --unregistered-out, stdout) could not be written: disk full, output closed
  130 interrupted (Ctrl-C): intake stopped, in-flight results and the summary were written

ENVIRONMENT:
  APNS_KEY_FILE, APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC, APNS_ENV stand in for the flags.
  APNS_PROFILE     the stored key (profile) to use, as --key NAME
  APNS_CONFIG      the profile file (default $XDG_CONFIG_HOME/apns/keys.toml, else ~/.config/apns/keys.toml)
  XDG_CONFIG_HOME  where the profile file lives; XDG_DATA_HOME where the file store keeps keys
  HTTPS_PROXY / https_proxy / ALL_PROXY / all_proxy name an HTTP proxy to APNs; NO_PROXY lists hosts
  that bypass it (curl's rules). --proxy beats them, --no-proxy ignores them.
  APNS_API_TOKEN   the token `apns serve` accepts when --api-token-file is not given
  RUST_LOG         log filters (logs go to stderr and never contain keys or tokens); -v logs each step
  NO_COLOR         no colours in logs (there are none either when stderr is not a terminal)";

pub const SEND: &str = r#"EXAMPLES:
  # TOKEN: a device token (hex, 64 digits today)
  apns send --key-file AuthKey_ABCDE12345.p8 \
    --team-id TEAM123456 --topic com.example.app \
    --env sandbox --alert 'Hello' TOKEN
  apns send ... --title 'Order shipped' \
    --body 'Arrives Tuesday' --badge 1 --sound default \
    TOKEN
  apns send ... --push-type background --priority 5 \
    --content-available TOKEN
  echo '{"aps":{"alert":"hi"}}' | \
    apns send ... --payload-file - TOKEN
  apns send ... --endpoint https://127.0.0.1:8443 \
    --ca-file mock-ca.pem --alert hi TOKEN
  apns send ... --alert hi --tokens-file devices.txt \
    --results results.jsonl --unregistered-out prune.txt
  # finish a cut-short run:
  apns send ... --alert hi --tokens-file devices.txt \
    --results results.jsonl --resume
  # through an HTTPS proxy:
  apns send ... --alert hi \
    --proxy http://user:password@proxy.corp:3128 TOKEN"#;

pub const ENQUEUE: &str = r#"Each device token becomes one stream entry (a job): the notification's fields, a unique `job` id (a UUID, also its apns-id), the format version `v` and `--app`. It prints
  {"enqueued":N,"first_id":"...","last_id":"...","invalid":0}
Invalid lines are reported on stderr and not enqueued (exit 2).

EXAMPLES:
  apns enqueue --redis redis://10.0.0.5:6379 --app myapp \
    --alert 'New episode' --tokens-file devices.txt
  apns enqueue --redis redis://127.0.0.1 \
    --topic com.example.app --title Hi \
    --body 'Arrives Tuesday' TOKEN1 TOKEN2
  # keeps the password out of ps and shell history:
  export APNS_REDIS_URL=redis://:PASSWORD@10.0.0.5:6379"#;

pub const WORKER: &str = r#"Runs until SIGTERM or Ctrl-C: then it reads no more, finishes the jobs in flight, writes their results and exits 0. A second signal abandons the jobs in flight (exit 130): they stay pending and another worker claims them after --claim-idle.

A job's `app` names a profile (`apns key list`) whose key sends it; a job without one uses --key, --key-file or --cert. Each job gets one entry in --results-stream; bad jobs also go to --dead-letter. A line on stderr every --stats-interval says jobs/s, in flight, pending, claimed and dead-lettered.

EXAMPLES:
  # jobs name their app (profiles in keys.toml):
  apns worker --redis redis://10.0.0.5:6379
  apns worker --redis redis://10.0.0.5:6379 --key myapp \
    --consumer "$(hostname)-1" --concurrency 2000 \
    --connections 2
  apns worker --redis redis://127.0.0.1 \
    --delivery at-most-once --claim-idle 2m \
    --max-deliveries 10"#;

pub const TOKEN: &str = r#"EXAMPLES:
  curl --http2 -H "authorization: bearer $(apns token \
      --key-file AuthKey_ABCDE12345.p8 \
      --team-id TEAM123456)" \
    -H 'apns-topic: com.example.app' \
    -d '{"aps":{"alert":"hi"}}' \
    https://api.sandbox.push.apple.com/3/device/TOKEN
  # what a token says (no key needed; with one, checked):
  apns token --decode "$JWT"
  apns token --decode --key-file AuthKey_ABCDE12345.p8 \
    --team-id TEAM123456 "$JWT""#;

pub const MOCK: &str = r#"When ready it prints one JSON line on stdout:
  {"endpoint":"https://127.0.0.1:PORT","ca_file":"PATH"}

EXAMPLE:
  apns mock --listen 127.0.0.1:8443 --ca-out mock-ca.pem \
    --trust-key \
      ABCDE12345=TEAM123456:AuthKey_ABCDE12345.p8 \
    --unregistered 0badc0de"#;

pub const BENCH: &str = r#"EXAMPLES:
  # 100,000 notifications, one connection:
  apns bench
  # soak: memory must not grow with the count:
  apns bench --count 1000000 --connections 2
  # apns worker processes on a Redis stream
  # (redis-server from PATH):
  apns bench --worker --workers 2 --count 200000
  apns bench --output json"#;

pub const DOCTOR: &str = r#"Each check prints PASS, WARN or FAIL with what it found, and a fix when it fails.

Exit code: 0 when every check passes; 2 for clock or key problems, 3 for network or TLS problems, 1 when the test notification is rejected.

EXAMPLES:
  apns doctor --env sandbox \
    --key-file AuthKey_ABCDE12345.p8 --team-id TEAM123456
  apns doctor --endpoint https://127.0.0.1:8443 \
    --ca-file mock-ca.pem --key-file K.p8 --team-id T \
    --topic com.example.app --device-token TOKEN"#;

pub const SERVE: &str = r#"Requests need Authorization: Bearer <token>, with tokens from --api-token-file (one per line, re-read when it changes) or APNS_API_TOKEN. When ready it prints one JSON line on stdout:
  {"listen":"http://127.0.0.1:8080","apps":["default"]}

SIGTERM (or Ctrl-C) stops accepting, finishes the requests in progress, then closes the APNs connections.

EXAMPLES:
  apns serve --listen 127.0.0.1:8080 \
    --api-token-file api-tokens \
    --key-file AuthKey_ABCDE12345.p8 \
    --team-id TEAM123456 --topic com.example.app \
    --env sandbox
  # more apps: profiles from `apns key list`:
  apns serve --listen 0.0.0.0:8443 \
    --tls-cert gateway.pem --tls-key gateway-key.pem \
    --api-token-file api-tokens --app shop --app news
  # push.json: {"device_token":"TOKEN",
  #   "payload":{"aps":{"alert":"hi"}}}
  curl -H "Authorization: Bearer $TOKEN" -d @push.json \
    http://127.0.0.1:8080/v1/notifications"#;

pub const KEY_ADD: &str = r#"EXAMPLES:
  apns key add myapp --key-file AuthKey_ABCDE12345.p8 \
    --team-id TEAM123456 --topic com.example.app
  apns key add myapp-ci --key-file AuthKey_ABCDE12345.p8 \
    --team-id TEAM123456 --store file --env sandbox
  # then:
  apns send --key myapp --alert hi TOKEN"#;

pub const CERT_INSPECT: &str = r#"EXAMPLES:
  apns cert inspect push.p12 \
    --cert-password-env P12_PASSWORD
  apns cert inspect cert.pem --output json"#;

pub const CERT_CONVERT: &str = r#"EXAMPLE:
  apns cert convert push.p12 --out push.pem \
    --cert-password-env P12_PASSWORD"#;

pub const CHANNEL_CREATE: &str = r#"At most 10,000 channels per app and environment (CannotCreateChannelConfig past that).

EXAMPLES:
  apns channel create --key myapp --env sandbox \
    --bundle-id com.example.app --storage most-recent
  # prints {"channel_id":"...","storage":"most-recent"}:
  apns channel create ... --output json"#;

pub const CHANNEL_LIST: &str = r#"EXAMPLES:
  apns channel list --key myapp --env sandbox \
    --bundle-id com.example.app
  # prints {"bundle_id":"...","channels":["..."]}:
  apns channel list ... --output json"#;

pub const CHANNEL_SHOW: &str = r#"EXAMPLE:
  apns channel show --key myapp --env sandbox \
    --bundle-id com.example.app --output json \
    dHN0LXNyY2gtY2hubA=="#;

pub const CHANNEL_DELETE: &str = r#"EXAMPLE:
  apns channel delete --key myapp --env sandbox \
    --bundle-id com.example.app dHN0LXNyY2gtY2hubA=="#;

pub const BROADCAST: &str = r#"The payload: --payload JSON, --payload-file PATH|-, or --event and its fields (aps.timestamp is set to now). Always sent: apns-channel-id, apns-push-type: liveactivity, apns-priority (default 10) and apns-expiration (default 0, which channels without message storage require).

Exit codes as for `apns send`: 0 accepted, 1 rejected (e.g. ChannelNotRegistered), 2 usage, 3 connection.

EXAMPLES:
  apns broadcast --key myapp --env sandbox \
    --bundle-id com.example.app \
    --channel-id dHN0LXNyY2gtY2hubA== --event update \
    --content-state '{"score":"2-1"}'
  apns broadcast ... --event end \
    --content-state '{"score":"3-1"}' \
    --dismissal-date +1h --title 'Final' --body '3-1'
  apns broadcast ... --payload-file update.json \
    --priority 5 --expiration +1h --output json
  # never connects:
  apns broadcast ... --event update --content-state '{}' \
    --dry-run
  # the curl command:
  apns broadcast ... --event update --content-state '{}' \
    --curl"#;

#[cfg(test)]
/// The widest an example line may be: narrower than any terminal `--help`
/// is read in, so clap's wrapping leaves it whole.
pub const EXAMPLE_WIDTH: usize = 58;

#[cfg(test)]
/// The example lines of `text` (those of its EXAMPLE or EXAMPLES
/// section, up to a blank line) that are neither a command, a comment nor
/// the continuation of the line before (which ends with `\`), or are wider
/// than `width`: empty when every example pastes as written.
pub fn broken_examples(text: &str, width: usize) -> Vec<String> {
    let mut broken = Vec::new();
    let mut in_examples = false;
    let mut continued = false;
    for line in text.lines() {
        if line.trim_end() == "EXAMPLES:" || line.trim_end() == "EXAMPLE:" {
            in_examples = true;
            continue;
        }
        if line.trim().is_empty() {
            in_examples = false;
            continue;
        }
        if !in_examples {
            continue;
        }
        let word = line.split_whitespace().next().unwrap_or_default();
        let starts = ["apns", "curl", "echo", "export", "#"].contains(&word);
        if !(starts || continued) || line.chars().count() > width {
            broken.push(line.to_string());
        }
        continued = line.ends_with('\\') && !line.trim_start().starts_with('#');
    }
    broken
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command's examples, found in the command tree itself.
    fn all(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        for text in [cmd.get_after_help(), cmd.get_after_long_help()]
            .into_iter()
            .flatten()
        {
            out.push((path.to_string(), text.to_string()));
        }
        for sub in cmd.get_subcommands() {
            all(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_example_line_pastes_as_written() {
        let mut texts = Vec::new();
        all(&super::super::Cli::command(), "apns", &mut texts);
        assert!(texts.len() > 15, "{texts:?}");
        for (path, text) in texts {
            let broken = super::broken_examples(&text, super::EXAMPLE_WIDTH);
            assert!(broken.is_empty(), "{path}: {broken:#?}");
        }
    }

    #[test]
    fn a_wrapped_example_is_found() {
        let text = "EXAMPLES:\n  apns send --alert hi --topic com.example.app\n  TOKEN\n";
        assert_eq!(super::broken_examples(text, 80), vec!["  TOKEN"]);
        let text = "EXAMPLES:\n  apns send --alert hi \\\n    TOKEN\n";
        assert!(super::broken_examples(text, 80).is_empty());
        assert_eq!(
            super::broken_examples(text, 10),
            vec!["  apns send --alert hi \\"]
        );
    }
}
