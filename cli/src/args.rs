//! Command-line arguments (clap derive). The help text is the manual.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod metrics_listen;
pub mod numbers;
pub use metrics_listen::MetricsListen;
mod serve;
pub use serve::{ProxyArgs, ServeArgs};

/// The most HTTP/2 connections `--connections` opens, as a flag's range.
pub const MAX_CONNECTIONS: u64 = super::MAX_CONNECTIONS as u64;
/// The most notifications or jobs in flight `--concurrency` takes (each
/// holds a task and a stream's buffers; Apple's stream limit is 1000 per
/// connection, so more than 64 × 1000 only queues).
pub const MAX_CONCURRENCY: u64 = 100_000;
/// The most streams per connection a mock advertises (`--max-streams`).
pub const MAX_STREAMS: u64 = 100_000;

/// Another server than Apple's (`apns mock`, a test server) and the CA to
/// trust for it: `--endpoint` and `--ca-file`, the same for every command
/// that connects.
#[derive(Debug, Args, Clone, Default)]
pub struct ServerArgs {
    /// Connect to this server instead of Apple's (`apns mock`, or a relay in front of APNs),
    /// e.g. https://127.0.0.1:8443.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Also trust the CA certificates in this PEM file (for a mock or a TLS-inspecting proxy).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
}

impl ServerArgs {
    /// `--endpoint`, else Apple's host for `environment`.
    pub fn endpoint_or(
        &self,
        environment: apns_provider::Environment,
    ) -> Result<apns_provider::Endpoint, super::Failure> {
        Ok(self
            .endpoint()?
            .unwrap_or_else(|| apns_provider::Endpoint::for_environment(environment)))
    }

    /// `--endpoint`, if given.
    pub fn endpoint(&self) -> Result<Option<apns_provider::Endpoint>, super::Failure> {
        Ok(self.endpoint.as_deref().map(str::parse).transpose()?)
    }

    /// `builder`, also trusting `--ca-file`.
    pub fn trusted(&self, builder: apns_provider::ClientBuilder) -> apns_provider::ClientBuilder {
        match &self.ca_file {
            Some(ca) => builder.add_root_certificates_file(ca),
            None => builder,
        }
    }
}

/// Send Apple push notifications with token (.p8) or certificate authentication.
#[derive(Debug, Parser)]
#[command(
    name = "apns",
    version,
    about = "Send Apple push notifications over HTTP/2 with .p8 token authentication (or a .p12/PEM certificate)",
    long_about = "Send Apple push notifications over HTTP/2 with .p8 token authentication, or with a push\ncertificate (.p12 or PEM) while you move to tokens.\n\nStart with `apns demo` (no Apple account needed: it runs a local mock APNs server).",
    after_help = "EXIT CODES:\n  0  every notification was accepted\n  1  at least one notification was rejected by APNs\n  2  usage or configuration error (bad flag, key, token or payload; invalid lines)\n  3  APNs could not be reached or the connection failed\n  4  an output (--results, --unregistered-out, stdout) could not be written: disk full, output closed\n  130 interrupted (Ctrl-C): intake stopped, in-flight results and the summary were written\n\nENVIRONMENT:\n  APNS_KEY_FILE, APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC, APNS_ENV stand in for the flags.\n  APNS_PROFILE     the stored key (profile) to use, as --key NAME\n  APNS_CONFIG      the profile file (default $XDG_CONFIG_HOME/apns/keys.toml, else ~/.config/apns/keys.toml)\n  XDG_CONFIG_HOME  where the profile file lives; XDG_DATA_HOME where the file store keeps keys\n  HTTPS_PROXY / https_proxy / ALL_PROXY / all_proxy name an HTTP proxy to APNs; NO_PROXY lists hosts\n  that bypass it (curl's rules). --proxy beats them, --no-proxy ignores them.\n  APNS_API_TOKEN   the token `apns serve` accepts when --api-token-file is not given\n  RUST_LOG         log filters (logs go to stderr and never contain keys or tokens)\n  NO_COLOR         no colours in logs (there are none either when stderr is not a terminal)"
)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send a notification to one or more device tokens.
    #[command(
        after_help = "EXAMPLES:\n  apns send --key-file AuthKey_ABCDE12345.p8 --team-id TEAM123456 \\\n       --topic com.example.app --env sandbox --alert 'Hello' 00fc13adff785122...\n  apns send ... --title 'Order shipped' --body 'Arrives Tuesday' --badge 1 --sound default TOKEN\n  apns send ... --push-type background --priority 5 --content-available TOKEN\n  echo '{\"aps\":{\"alert\":\"hi\"}}' | apns send ... --payload-file - TOKEN\n  apns send ... --endpoint https://127.0.0.1:8443 --ca-file mock-ca.pem --alert hi TOKEN\n  apns send ... --alert hi --tokens-file devices.txt --results results.jsonl --unregistered-out prune.txt\n  apns send ... --alert hi --tokens-file devices.txt --results results.jsonl --resume   # finish a cut-short run\n  apns send ... --proxy http://user:password@proxy.corp:3128 --alert hi TOKEN           # through an HTTPS proxy"
    )]
    Send(Box<SendArgs>),
    /// Add one job per device token to a Redis stream, for `apns worker` processes to send.
    #[command(after_help = super::queue_args::ENQUEUE_HELP)]
    Enqueue(Box<super::queue_args::EnqueueArgs>),
    /// Send the jobs of a Redis stream, sharing them with other workers on any number of machines.
    #[command(after_help = super::queue_args::WORKER_HELP)]
    Worker(Box<super::queue_args::WorkerArgs>),
    /// Print one fresh provider token (JWT) on stdout, for curl.
    #[command(
        after_help = "EXAMPLE:\n  curl --http2 -H \"authorization: bearer $(apns token --key-file AuthKey_ABCDE12345.p8 --team-id TEAM123456)\" \\\n       -H 'apns-topic: com.example.app' -d '{\"aps\":{\"alert\":\"hi\"}}' \\\n       https://api.sandbox.push.apple.com/3/device/TOKEN"
    )]
    Token(TokenArgs),
    /// Run the validating mock APNs server (TLS + HTTP/2) until Ctrl-C.
    #[command(
        after_help = "When ready it prints one JSON line on stdout:\n  {\"endpoint\":\"https://127.0.0.1:PORT\",\"ca_file\":\"PATH\"}\n\nEXAMPLE:\n  apns mock --listen 127.0.0.1:8443 --ca-out mock-ca.pem \\\n       --trust-key ABCDE12345=TEAM123456:AuthKey_ABCDE12345.p8 --unregistered 0badc0de"
    )]
    Mock(MockArgs),
    /// Show a real send end to end: throwaway key, built-in mock, several pushes.
    Demo {
        /// Output format (json: one object per send, then a summary object).
        #[arg(long, value_enum, default_value = "human")]
        output: Output,
    },
    /// Measure throughput, client CPU, latency and memory against a mock in its own process.
    #[command(
        after_help = "EXAMPLES:\n  apns bench                                  # 100,000 notifications, one connection\n  apns bench --count 1000000 --connections 2  # soak: memory must not grow with the count\n  apns bench --worker --workers 2 --count 200000  # apns worker processes on a Redis stream (redis-server from PATH)\n  apns bench --output json"
    )]
    Bench(BenchArgs),
    /// Check a setup step by step: clock, key, DNS, TCP, TLS, HTTP/2, certificate chain, a real send.
    #[command(
        after_help = "Each check prints PASS, WARN or FAIL with what it found, and a fix when it fails.\n\nEXAMPLES:\n  apns doctor --env sandbox --key-file AuthKey_ABCDE12345.p8 --team-id TEAM123456\n  apns doctor --endpoint https://127.0.0.1:8443 --ca-file mock-ca.pem --key-file K.p8 --team-id T \\\n       --topic com.example.app --device-token 00fc13ad...\n\nExit code: 0 when every check passes; 2 for clock or key problems, 3 for network or TLS problems,\n1 when the test notification is rejected."
    )]
    Doctor(DoctorArgs),
    /// Run an authenticated HTTP gateway: POST /v1/notifications, /healthz, /readyz, /metrics.
    #[command(
        after_help = "Requests need Authorization: Bearer <token>, with tokens from --api-token-file (one per\nline, re-read when it changes) or APNS_API_TOKEN. When ready it prints one JSON line on stdout:\n  {\"listen\":\"http://127.0.0.1:8080\",\"apps\":[\"default\"]}\n\nEXAMPLES:\n  apns serve --listen 127.0.0.1:8080 --api-token-file api-tokens \\\n       --key-file AuthKey_ABCDE12345.p8 --team-id TEAM123456 --topic com.example.app --env sandbox\n  apns serve --listen 0.0.0.0:8443 --tls-cert gateway.pem --tls-key gateway-key.pem \\\n       --api-token-file api-tokens --app shop --app news      # profiles from `apns key list`\n  curl -H \"Authorization: Bearer $TOKEN\" -d '{\"device_token\":\"00fc13ad...\",\"payload\":{\"aps\":{\"alert\":\"hi\"}}}' \\\n       http://127.0.0.1:8080/v1/notifications\n\nSIGTERM (or Ctrl-C) stops accepting, finishes the requests in progress, then closes the APNs connections."
    )]
    Serve(Box<ServeArgs>),
    /// Manage stored keys and profiles: add, list, show, rotate, remove.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Inspect or convert push certificates (.p12 / PEM).
    #[command(subcommand)]
    Cert(CertCommand),
    /// Print a shell completion script: apns completions bash > /etc/bash_completion.d/apns
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Manage broadcast channels (iOS 18 Live Activities): create, list, show, delete.
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Send one broadcast push to a channel: every Live Activity subscribed to it updates.
    #[command(
        after_help = "The payload: --payload JSON, --payload-file PATH|-, or --event and its fields (aps.timestamp\nis set to now). Always sent: apns-channel-id, apns-push-type: liveactivity, apns-priority\n(default 10) and apns-expiration (default 0, which channels without message storage require).\n\nEXAMPLES:\n  apns broadcast --key myapp --env sandbox --bundle-id com.example.app \\\n       --channel-id dHN0LXNyY2gtY2hubA== --event update --content-state '{\"score\":\"2-1\"}'\n  apns broadcast ... --event end --content-state '{\"score\":\"3-1\"}' --dismissal-date +1h \\\n       --title 'Final' --body '3-1'\n  apns broadcast ... --payload-file update.json --priority 5 --expiration +1h --output json\n  apns broadcast ... --event update --content-state '{}' --dry-run   # never connects\n  apns broadcast ... --event update --content-state '{}' --curl      # the curl command\n\nExit codes as for `apns send`: 0 accepted, 1 rejected (e.g. ChannelNotRegistered),\n2 usage, 3 connection."
    )]
    Broadcast(Box<BroadcastArgs>),
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Store a .p8 key (keychain or file store) and write its profile.
    #[command(
        after_help = "EXAMPLES:\n  apns key add myapp --key-file AuthKey_ABCDE12345.p8 --team-id TEAM123456 --topic com.example.app\n  apns key add myapp-ci --key-file AuthKey_ABCDE12345.p8 --team-id TEAM123456 --store file --env sandbox\n\nThen: apns send --key myapp --alert hi TOKEN"
    )]
    Add {
        /// Profile name.
        name: String,
        /// The .p8 key from Apple (must be chmod 600).
        #[arg(long, value_name = "PATH")]
        key_file: PathBuf,
        /// The key id; inferred from an AuthKey_<KEYID>.p8 file name when omitted.
        #[arg(long, value_name = "KID")]
        key_id: Option<String>,
        /// The team id (may also be given at send time with --team-id).
        #[arg(long, value_name = "TEAM")]
        team_id: Option<String>,
        /// Environment the key may be used with.
        #[arg(
            long = "env",
            default_value = "both",
            value_name = "sandbox|production|both"
        )]
        environment: String,
        /// Default topic (bundle id).
        #[arg(long)]
        topic: Option<String>,
        /// Where to keep the key: the OS keychain, or a 0600 file under the XDG data directory.
        #[arg(long, value_enum, default_value = "keychain")]
        store: StoreKind,
    },
    /// List profiles: name, team, key id, environment, store, public-key fingerprint (never a secret).
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        output: Output,
    },
    /// Show one profile and its public key PEM (what a mock or a verifier needs).
    Show {
        /// Profile name.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        output: Output,
    },
    /// Replace a profile's key in place; the old key id is shown so you can revoke it at Apple.
    Rotate {
        /// Profile name.
        name: String,
        /// The new .p8 key.
        #[arg(long, value_name = "PATH")]
        key_file: PathBuf,
        /// The new key id; inferred from an AuthKey_<KEYID>.p8 file name when omitted.
        #[arg(long, value_name = "KID")]
        key_id: Option<String>,
    },
    /// Remove a profile and its stored key (asks first, unless --yes).
    Remove {
        /// Profile name.
        name: String,
        /// Do not ask.
        #[arg(long, short)]
        yes: bool,
    },
}

/// Where `apns key add` keeps a key.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum StoreKind {
    /// The OS keychain (macOS Keychain, Windows Credential Manager, Linux Secret Service).
    Keychain,
    /// A 0600 file under $XDG_DATA_HOME/apns/keys.
    File,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Show what a push certificate allows: bundle id, topics, environment, validity.
    #[command(
        after_help = "EXAMPLES:\n  apns cert inspect push.p12 --cert-password-env P12_PASSWORD\n  apns cert inspect cert.pem --output json"
    )]
    Inspect {
        /// The certificate (.p12/.pfx or PEM).
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// The private key, when it is in a separate PEM file.
        #[arg(long, value_name = "PATH")]
        cert_key: Option<PathBuf>,
        #[command(flatten)]
        password: PasswordArgs,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        output: Output,
    },
    /// Convert a .p12 to PEM (certificate chain and unencrypted key), written with mode 0600.
    #[command(
        after_help = "EXAMPLE:\n  apns cert convert push.p12 --out push.pem --cert-password-env P12_PASSWORD"
    )]
    Convert {
        /// The .p12/.pfx to convert.
        #[arg(value_name = "IN.p12")]
        path: PathBuf,
        /// Where to write the PEM.
        #[arg(long, value_name = "OUT.pem")]
        out: PathBuf,
        #[command(flatten)]
        password: PasswordArgs,
    },
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub cert: CertArgs,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Apple environment to check (default: the profile's, else production).
    #[arg(long = "env", env = "APNS_ENV", value_name = "sandbox|production", value_parser = environments())]
    pub environment: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Finish with one real send to this device token (needs the key and --topic).
    #[arg(long, value_name = "TOKEN")]
    pub device_token: Option<String>,
    /// Topic for the test send.
    #[arg(long, env = "APNS_TOPIC")]
    pub topic: Option<String>,
    /// Limit for each network step, in seconds.
    #[arg(long, default_value = "10", value_name = "SECONDS", value_parser = numbers::seconds(false, numbers::DAY))]
    pub timeout: f64,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Notifications to send (after a warm-up of a tenth, at most 10,000).
    #[arg(long, default_value = "100000", value_name = "N", value_parser = numbers::count::<u64>(1, 100_000_000))]
    pub count: u64,
    /// Connections in the client's pool.
    #[arg(long, default_value = "1", value_name = "C", value_parser = numbers::count::<usize>(1, MAX_CONNECTIONS))]
    pub connections: usize,
    /// Notifications in flight at once (send_many's bound; `apns send`'s default).
    #[arg(long, default_value = "500", value_name = "K", value_parser = numbers::count::<usize>(1, MAX_CONCURRENCY))]
    pub concurrency: usize,
    /// Stream limit the spawned mock advertises per connection.
    #[arg(long, default_value = "1000", value_name = "N", value_parser = numbers::count::<u32>(1, MAX_STREAMS))]
    pub max_streams: u32,
    /// Payload size in bytes (default: a small alert).
    #[arg(long, default_value = "0", value_name = "BYTES", value_parser = numbers::count::<usize>(0, 5120))]
    pub payload_bytes: usize,
    /// Benchmark an already running server (e.g. `apns mock --accept-all`) instead of spawning one.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The CA of --endpoint.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Measure the CLI instead: write a file of --count tokens, run `apns send --tokens-file ...
    /// --results ...` on it as a separate process, and report its time and peak memory.
    #[arg(long)]
    pub cli: bool,
    /// Measure `apns worker` instead: enqueue --count jobs in Redis, run --workers worker
    /// processes (each with --concurrency and --connections) on them, and report jobs/s.
    #[arg(long, conflicts_with = "cli")]
    pub worker: bool,
    /// With --worker: how many worker processes share the stream.
    #[arg(long, default_value = "1", value_name = "N", value_parser = numbers::count::<usize>(1, 64))]
    pub workers: usize,
    /// With --worker: the Redis to use (default: a redis-server from PATH, started on a free
    /// loopback port).
    #[arg(long, value_name = "URL", requires = "worker")]
    pub redis: Option<String>,
    /// Pin the spawned mock to CPU 0 and the measured process (and h2load) to CPU 1 with
    /// taskset, so they do not share a core (needs 2 CPUs and taskset).
    #[arg(long)]
    pub pin: bool,
    /// With --cli: skip the h2load comparison (run when h2load is on the PATH).
    #[arg(long, requires = "cli")]
    pub no_h2load: bool,
    /// Spawn the mock in validating mode (it checks every header, the token's signature and
    /// the payload, as `apns mock --trust-key` does) instead of accept-all, to measure what
    /// validation costs per request.
    #[arg(long, conflicts_with = "endpoint")]
    pub validating: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub output: Output,
}

/// Token credentials shared by `send`, `token` and `doctor`.
#[derive(Debug, Args, Clone)]
pub struct KeyArgs {
    /// Use a named profile from the profile file (`apns key list`); flags and environment
    /// variables override its fields.
    #[arg(long = "key", env = "APNS_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// The .p8 key from Apple (AuthKey_<KEYID>.p8).
    #[arg(long, env = "APNS_KEY_FILE", value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// The 10-character key id; inferred from an AuthKey_<KEYID>.p8 file name when omitted.
    #[arg(long, env = "APNS_KEY_ID", value_name = "KID")]
    pub key_id: Option<String>,
    /// The 10-character team id (Apple Developer > Membership).
    #[arg(long, env = "APNS_TEAM_ID", value_name = "TEAM")]
    pub team_id: Option<String>,
}

/// Certificate credentials (the older way, still supported during the move to tokens).
#[derive(Debug, Args, Clone, Default)]
pub struct CertArgs {
    /// A push certificate: .p12/.pfx, or PEM with the certificate and its key
    /// (as `openssl pkcs12 -in cert.p12 -out cert.pem -clcerts -nodes` writes it).
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "key_file",
        help_heading = "Certificate authentication"
    )]
    pub cert: Option<PathBuf>,
    /// The certificate's private key, when it is in a separate PEM file.
    #[arg(
        long,
        value_name = "PATH",
        requires = "cert",
        help_heading = "Certificate authentication"
    )]
    pub cert_key: Option<PathBuf>,
    #[command(flatten)]
    pub password: PasswordArgs,
}

/// Where a .p12 password comes from: never an argument that lands in shell
/// history. Without either, a terminal is asked.
#[derive(Debug, Args, Clone, Default)]
pub struct PasswordArgs {
    /// Read the .p12 password from this environment variable.
    #[arg(
        long,
        value_name = "VAR",
        conflicts_with = "cert_password_file",
        help_heading = "Certificate authentication"
    )]
    pub cert_password_env: Option<String>,
    /// Read the .p12 password from this file (its first line).
    #[arg(long, value_name = "FILE", help_heading = "Certificate authentication")]
    pub cert_password_file: Option<PathBuf>,
}

/// Values offered by `--help` and shell completion, without clap checking
/// them: the command checks them itself, with its own one-line error.
#[derive(Clone)]
struct Offered(&'static [&'static str]);

impl clap::builder::TypedValueParser for Offered {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            self.0.iter().map(|v| clap::builder::PossibleValue::new(*v)),
        ))
    }
}

/// The values of `--env` (`development`, `dev` and `prod` work too).
fn environments() -> Offered {
    Offered(&["sandbox", "production"])
}

/// The values of `--push-type`.
fn push_types() -> Offered {
    Offered(&[
        "alert",
        "background",
        "location",
        "voip",
        "complication",
        "fileprovider",
        "mdm",
        "liveactivity",
        "pushtotalk",
        "widgets",
        "controls",
    ])
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    /// One readable line per notification.
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub cert: CertArgs,
    /// Connect to ADDR for HOST:PORT instead of resolving it, like curl's --resolve
    /// (e.g. api.development.push.apple.com:443:127.0.0.1:8443); TLS still checks HOST.
    #[arg(long, value_name = "HOST:PORT:ADDR")]
    pub resolve: Option<String>,

    /// The app's bundle id, plus the push type's suffix (e.g. com.example.app.voip).
    #[arg(long, env = "APNS_TOPIC")]
    pub topic: Option<String>,
    /// Apple environment the device tokens belong to (default: the profile's, else production).
    #[arg(long = "env", env = "APNS_ENV", value_name = "sandbox|production", value_parser = environments())]
    pub environment: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,

    /// apns-push-type: alert, background, location, voip, complication, fileprovider, mdm, liveactivity, pushtotalk, widgets, controls.
    #[arg(long, default_value = "alert", value_name = "TYPE", value_parser = push_types())]
    pub push_type: String,
    /// apns-priority: 10 (immediate), 5 (power-aware, required for background) or 1.
    #[arg(long, value_name = "10|5|1")]
    pub priority: Option<String>,
    /// apns-expiration: 0 (do not store), UNIX seconds, or +DURATION such as +1h.
    #[arg(long, value_name = "E", allow_hyphen_values = true)]
    pub expiration: Option<String>,
    /// apns-collapse-id (at most 64 bytes).
    #[arg(long, value_name = "ID")]
    pub collapse_id: Option<String>,
    /// apns-id (a UUID); APNs makes one when omitted.
    #[arg(long, value_name = "UUID")]
    pub apns_id: Option<String>,

    #[command(flatten)]
    pub payload: PayloadArgs,

    /// Output format for results on stdout (result files are always JSON lines).
    #[arg(long, value_enum, default_value = "human")]
    pub output: Output,
    /// Limit for one notification, in seconds, retries included.
    #[arg(long, default_value = "30", value_name = "SECONDS", value_parser = numbers::seconds(false, numbers::DAY))]
    pub timeout: f64,

    /// Read device tokens from a file (or stdin with "-"): one hex token per line, or JSON lines
    /// {"device_token":"..","payload":{..},"push_type":..,"priority":..,"expiration":..,"collapse_id":..,"apns_id":..,"topic":..}.
    /// Blank lines and lines starting with # are skipped. Streamed: any size. A bad line (not
    /// UTF-8, a token over 200 hex digits, over 64 KiB) is an invalid line of its own.
    #[arg(long, value_name = "PATH|-", help_heading = "Bulk sending")]
    pub tokens_file: Option<PathBuf>,
    /// Write one JSON result line per notification to PATH, as they complete (flushed at least
    /// every second). Never the tokens file: that is refused before anything is read.
    #[arg(long, value_name = "PATH", help_heading = "Bulk sending")]
    pub results: Option<PathBuf>,
    /// Write the tokens APNs reports unregistered (410), one per line: the ones to prune.
    #[arg(long, value_name = "PATH", help_heading = "Bulk sending")]
    pub unregistered_out: Option<PathBuf>,
    /// Notifications in flight at once (1 to 100000).
    #[arg(
        long,
        default_value = "500",
        value_name = "N",
        help_heading = "Bulk sending",
        value_parser = numbers::count::<usize>(1, MAX_CONCURRENCY)
    )]
    pub concurrency: usize,
    /// HTTP/2 connections to open, at most 64 (each carries up to the server's stream limit).
    #[arg(
        long,
        default_value = "1",
        value_name = "N",
        help_heading = "Bulk sending",
        value_parser = numbers::count::<usize>(1, MAX_CONNECTIONS)
    )]
    pub connections: usize,
    /// Finish an interrupted bulk send: read the --results file of that run, skip every line it
    /// finished (accepted, or rejected for good: Unregistered, BadDeviceToken, a bad payload...),
    /// send the rest and append their result lines (the --unregistered-out file is appended to as
    /// well). Lines that may have been delivered are skipped unless --resend-unknown is given. Needs
    /// the same --tokens-file and --results.
    #[arg(long, help_heading = "Bulk sending")]
    pub resume: bool,
    /// At-least-once delivery: also resend, with the same apns-id, notifications that may have been
    /// delivered (their connection died while they were on the wire), and with --resume the lines
    /// whose result says may_have_been_delivered. The cost: a device may show such a notification
    /// twice; give a --collapse-id so that a second copy replaces the first.
    #[arg(long, help_heading = "Bulk sending")]
    pub resend_unknown: bool,
    /// Never draw the progress bar (it is drawn only when stderr is a terminal).
    #[arg(long, help_heading = "Bulk sending")]
    pub no_progress: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics while sending (no authentication: bind to
    /// loopback or a private address; port 0 picks one, said on stderr).
    #[arg(long, value_name = "ADDR", help_heading = "Bulk sending", value_parser = MetricsListen)]
    pub metrics_listen: Option<SocketAddr>,

    #[command(flatten)]
    pub proxy: ProxyArgs,

    /// Build and validate every notification (payload size, lints, fields) without connecting;
    /// print what would be sent.
    #[arg(long, conflicts_with = "curl", help_heading = "Checking")]
    pub dry_run: bool,
    /// Print the equivalent curl command for each notification instead of sending.
    #[arg(long, help_heading = "Checking")]
    pub curl: bool,
    /// With --curl: put the real provider token in the command instead of $(apns token ...).
    #[arg(long, requires = "curl", help_heading = "Checking")]
    pub reveal: bool,

    /// Hex device tokens (64 hex digits on devices; longer on simulators).
    #[arg(value_name = "DEVICE_TOKEN", required_unless_present = "tokens_file")]
    pub device_tokens: Vec<String>,
}

/// How the payload is given: one of --alert, the alert fields, --payload or --payload-file.
#[derive(Debug, Args)]
pub struct PayloadArgs {
    /// A plain alert: {"aps":{"alert":TEXT}}.
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["payload", "payload_file", "title", "subtitle", "body"])]
    pub alert: Option<String>,
    /// Alert title.
    #[arg(long, value_name = "T")]
    pub title: Option<String>,
    /// Alert subtitle.
    #[arg(long, value_name = "S")]
    pub subtitle: Option<String>,
    /// Alert body.
    #[arg(long, value_name = "B")]
    pub body: Option<String>,
    /// Badge number (0 clears it).
    #[arg(long, value_name = "N", value_parser = numbers::count::<u32>(0, i32::MAX as u64))]
    pub badge: Option<u32>,
    /// Sound file name, or "default".
    #[arg(long, value_name = "NAME")]
    pub sound: Option<String>,
    /// Notification category.
    #[arg(long, value_name = "ID")]
    pub category: Option<String>,
    /// Thread id for grouping.
    #[arg(long, value_name = "ID")]
    pub thread_id: Option<String>,
    /// Set aps.content-available = 1.
    #[arg(long)]
    pub content_available: bool,
    /// Set aps.mutable-content = 1.
    #[arg(long)]
    pub mutable_content: bool,
    /// aps.interruption-level: passive, active, time-sensitive or critical.
    #[arg(long, value_name = "LEVEL")]
    pub interruption_level: Option<String>,
    /// Custom data beside aps, as KEY=JSON (e.g. order_id=1234); repeatable.
    #[arg(long = "custom", value_name = "KEY=JSON")]
    pub custom: Vec<String>,
    /// The whole payload as JSON, sent byte for byte.
    #[arg(long, value_name = "JSON", conflicts_with_all = ["payload_file", "title", "subtitle", "body", "badge", "sound", "category", "thread_id", "content_available", "mutable_content", "interruption_level", "custom"])]
    pub payload: Option<String>,
    /// Read the payload JSON from a file, or from stdin with "-".
    #[arg(long, value_name = "PATH|-", conflicts_with_all = ["title", "subtitle", "body", "badge", "sound", "category", "thread_id", "content_available", "mutable_content", "interruption_level", "custom"])]
    pub payload_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Show the token's header, claims and age instead of the bare token. With JWT (or "-" for
    /// stdin), decode that token and check its signature against the key.
    #[arg(long)]
    pub decode: bool,
    /// A token to decode (with --decode).
    #[arg(value_name = "JWT", requires = "decode")]
    pub jwt: Option<String>,
    /// Output format (with --decode).
    #[arg(long, value_enum, default_value = "human")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct MockArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Where to write the generated CA certificate (default: a file in the temp directory).
    #[arg(long, value_name = "PATH")]
    pub ca_out: Option<PathBuf>,
    /// Trust tokens from a key: KID=TEAM:PATH (PATH being the .p8 or a public-key PEM), or the name
    /// of a stored key (`apns key list`); repeatable.
    #[arg(long, value_name = "KID=TEAM:PATH")]
    pub trust_key: Vec<String>,
    /// Stream limit advertised after the first valid token.
    #[arg(long, default_value = "1000", value_name = "N", value_parser = numbers::count::<u32>(1, MAX_STREAMS))]
    pub max_streams: u32,
    /// Answer 410 Unregistered for this device token; repeatable.
    #[arg(long, value_name = "TOKEN")]
    pub unregistered: Vec<String>,
    /// Which environment to play (sandbox also sends apns-unique-id).
    #[arg(
        long = "env",
        default_value = "sandbox",
        value_name = "sandbox|production",
        value_parser = environments()
    )]
    pub environment: String,
    /// Refuse tokens APNs tolerates (padded base64, DER signatures, "Bearer").
    #[arg(long)]
    pub strict_tokens: bool,
    /// Add a DNS name to the mock's server certificate (e.g. api.sandbox.push.apple.com); repeatable.
    #[arg(long, value_name = "NAME")]
    pub server_name: Vec<String>,
    /// Certificate mode: accept client certificates signed by this CA; topics come from them.
    #[arg(long, value_name = "CA.pem")]
    pub client_ca: Option<PathBuf>,
    /// Refuse a certificate for the other environment with a GOAWAY instead of a 403.
    #[arg(long, requires = "client_ca")]
    pub bad_env_goaway: bool,
    /// Benchmark mode: answer every request 200 at once, without validation or recording.
    #[arg(long)]
    pub accept_all: bool,
    /// Broadcast channels allowed per app before a create gets CannotCreateChannelConfig (Apple: 10000).
    #[arg(long, default_value = "10000", value_name = "N", value_parser = numbers::count::<usize>(1, 1_000_000))]
    pub max_channels: usize,

    /// Fault: after a connection answers N requests, send GOAWAY (once).
    #[arg(long, value_name = "N", help_heading = "Fault injection", value_parser = numbers::count::<u64>(0, 1_000_000_000))]
    pub goaway_after: Option<u64>,
    /// The reason in the GOAWAY's JSON debug data.
    #[arg(
        long,
        value_name = "REASON",
        default_value = "Shutdown",
        help_heading = "Fault injection"
    )]
    pub goaway_reason: String,
    /// Fault: reset the next K streams with REFUSED_STREAM.
    #[arg(long, value_name = "K", help_heading = "Fault injection", value_parser = numbers::count::<u64>(0, 1_000_000_000))]
    pub refuse_streams: Option<u64>,
    /// Fault: after N requests, close the TCP connection of the next one mid-flight (once).
    #[arg(long, value_name = "N", help_heading = "Fault injection", value_parser = numbers::count::<u64>(0, 1_000_000_000))]
    pub drop_after: Option<u64>,
    /// Fault: read requests and never answer them.
    #[arg(long, help_heading = "Fault injection")]
    pub black_hole: bool,
    /// Fault: never answer PINGs.
    #[arg(long, help_heading = "Fault injection")]
    pub ignore_pings: bool,
    /// Fault: accept TCP connections and never finish the TLS handshake.
    #[arg(long, help_heading = "Fault injection")]
    pub stall_tls: bool,
    /// Fault: answer the next K requests with an error: STATUS:K (500, 503, 429) or REASON:K (e.g. Shutdown:10).
    #[arg(long, value_name = "STATUS:K", help_heading = "Fault injection")]
    pub storm: Vec<String>,
    /// Fault: drop a connection's stream limit to 1 after any rejection.
    #[arg(long, help_heading = "Fault injection")]
    pub limit_drop_on_reject: bool,
    /// Fault: answer every request 403 ExpiredProviderToken.
    #[arg(long, help_heading = "Fault injection")]
    pub expire_tokens: bool,
    /// Fault: a timed outage: answer every request 503 ServiceUnavailable for the first SECS seconds.
    #[arg(long, value_name = "SECS", help_heading = "Fault injection", value_parser = numbers::seconds(false, numbers::DAY))]
    pub outage: Option<f64>,

    /// Threads serving connections (default: one per core; 1 runs everything on one thread).
    #[arg(long, default_value = "0", value_name = "N", hide_default_value = true, value_parser = numbers::count::<usize>(0, 1024))]
    pub threads: usize,

    /// Keep the last N accepted notifications in memory (counters count them all).
    #[arg(
        long,
        default_value = "10000",
        value_name = "N",
        help_heading = "Long-running",
        value_parser = numbers::count::<usize>(0, 10_000_000)
    )]
    pub keep: usize,
    /// Close clients that do not finish TLS and send the HTTP/2 preface (or a whole request)
    /// within SECS seconds.
    #[arg(
        long,
        default_value = "10",
        value_name = "SECS",
        help_heading = "Long-running",
        value_parser = numbers::seconds(false, numbers::DAY)
    )]
    pub handshake_timeout: f64,
    /// Close connections without a request for SECS seconds (with a GOAWAY).
    #[arg(
        long,
        default_value = "300",
        value_name = "SECS",
        help_heading = "Long-running",
        value_parser = numbers::seconds(false, numbers::DAY)
    )]
    pub idle_timeout: f64,
}

/// Credentials and endpoint of `apns channel` and `apns broadcast`: as for `apns send`.
#[derive(Debug, Args)]
pub struct AppArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub cert: CertArgs,
    /// The app's bare bundle id, without a push-type suffix (default: the profile's topic, else the
    /// certificate's bundle id).
    #[arg(long, value_name = "BUNDLE_ID")]
    pub bundle_id: Option<String>,
    /// Apple environment (default: the profile's, else production). Channels are not shared between
    /// environments.
    #[arg(long = "env", env = "APNS_ENV", value_name = "sandbox|production")]
    pub environment: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Limit for the request, in seconds, retries included.
    #[arg(long, default_value = "30", value_name = "SECONDS", value_parser = numbers::seconds(false, numbers::DAY))]
    pub timeout: f64,
    /// Output format for the result on stdout.
    #[arg(long, value_enum, default_value = "human")]
    pub output: Output,
    #[command(flatten)]
    pub proxy: ProxyArgs,
}

/// Where channel-management requests go.
#[derive(Debug, Args)]
pub struct ChannelArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// The channel-management host (default: Apple's for --env, or --endpoint when given).
    #[arg(long, value_name = "URL")]
    pub channels_endpoint: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Create a channel and print its id.
    #[command(
        after_help = "EXAMPLES:\n  apns channel create --key myapp --env sandbox --bundle-id com.example.app --storage most-recent\n  apns channel create ... --output json      # {\"channel_id\":\"...\",\"storage\":\"most-recent\"}\n\nAt most 10,000 channels per app and environment (CannotCreateChannelConfig past that)."
    )]
    Create {
        #[command(flatten)]
        args: ChannelArgs,
        /// What APNs keeps for late subscribers: none (broadcasts must use --expiration 0), or the
        /// most recent message (up to about 8 hours). It cannot change later.
        #[arg(long, default_value = "none", value_name = "none|most-recent")]
        storage: String,
    },
    /// List the app's channels in this environment, one id per line.
    #[command(
        after_help = "EXAMPLES:\n  apns channel list --key myapp --env sandbox --bundle-id com.example.app\n  apns channel list ... --output json        # {\"bundle_id\":\"...\",\"channels\":[\"...\"]}"
    )]
    List {
        #[command(flatten)]
        args: ChannelArgs,
    },
    /// Show a channel: its storage policy and push type.
    #[command(
        after_help = "EXAMPLE:\n  apns channel show --key myapp --env sandbox --bundle-id com.example.app dHN0LXNyY2gtY2hubA== --output json"
    )]
    Show {
        #[command(flatten)]
        args: ChannelArgs,
        /// The channel id, as `apns channel create` printed it.
        #[arg(value_name = "CHANNEL_ID")]
        channel_id: String,
    },
    /// Delete a channel (irreversible: later broadcasts to it get ChannelNotRegistered).
    #[command(
        after_help = "EXAMPLE:\n  apns channel delete --key myapp --env sandbox --bundle-id com.example.app dHN0LXNyY2gtY2hubA=="
    )]
    Delete {
        #[command(flatten)]
        args: ChannelArgs,
        /// The channel id.
        #[arg(value_name = "CHANNEL_ID")]
        channel_id: String,
    },
}

#[derive(Debug, Args)]
pub struct BroadcastArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// The channel to broadcast to (apns-channel-id), as `apns channel create` printed it.
    #[arg(long, value_name = "ID")]
    pub channel_id: String,

    /// The whole payload as JSON, sent byte for byte.
    #[arg(long, value_name = "JSON", conflicts_with_all = ["payload_file", "event"], help_heading = "Payload")]
    pub payload: Option<String>,
    /// Read the payload JSON from a file, or from stdin with "-".
    #[arg(
        long,
        value_name = "PATH|-",
        conflicts_with = "event",
        help_heading = "Payload"
    )]
    pub payload_file: Option<PathBuf>,
    /// aps.event: update or end (start is a push-to-start notification to a device, not a broadcast).
    #[arg(long, value_name = "start|update|end", help_heading = "Payload")]
    pub event: Option<String>,
    /// aps.content-state: the Live Activity's dynamic data, as JSON.
    #[arg(
        long,
        value_name = "JSON",
        requires = "event",
        help_heading = "Payload"
    )]
    pub content_state: Option<String>,
    /// aps.stale-date: UNIX seconds, or +DURATION such as +15m.
    #[arg(long, value_name = "T", requires = "event", help_heading = "Payload")]
    pub stale_date: Option<String>,
    /// aps.dismissal-date (end events): UNIX seconds, or +DURATION such as +1h.
    #[arg(long, value_name = "T", requires = "event", help_heading = "Payload")]
    pub dismissal_date: Option<String>,
    /// aps.relevance-score, from 0.0 to 1.0.
    #[arg(
        long,
        value_name = "SCORE",
        requires = "event",
        help_heading = "Payload",
        value_parser = numbers::real(0.0, 1.0)
    )]
    pub relevance_score: Option<f64>,
    /// A plain alert: aps.alert = TEXT.
    #[arg(long, value_name = "TEXT", requires = "event", conflicts_with_all = ["title", "body"], help_heading = "Payload")]
    pub alert: Option<String>,
    /// Alert title (aps.alert.title).
    #[arg(long, value_name = "T", requires = "event", help_heading = "Payload")]
    pub title: Option<String>,
    /// Alert body (aps.alert.body).
    #[arg(long, value_name = "B", requires = "event", help_heading = "Payload")]
    pub body: Option<String>,

    /// apns-priority: 10 (immediate, the default), 5 or 1.
    #[arg(long, value_name = "10|5|1")]
    pub priority: Option<String>,
    /// apns-expiration: 0 (the default: do not store), UNIX seconds, or +DURATION such as +1h. Only
    /// channels created with --storage most-recent take a later time (others: BadExpirationDate).
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    pub expiration: Option<String>,
    /// apns-request-id (a UUID); APNs makes one when omitted.
    #[arg(long, value_name = "UUID")]
    pub request_id: Option<String>,

    /// Build and validate the broadcast (payload size, lints, fields) without connecting; print
    /// what would be sent.
    #[arg(long, conflicts_with = "curl", help_heading = "Checking")]
    pub dry_run: bool,
    /// Print the equivalent curl command instead of sending.
    #[arg(long, help_heading = "Checking")]
    pub curl: bool,
    /// With --curl: put the real provider token in the command instead of $(apns token ...).
    #[arg(long, requires = "curl", help_heading = "Checking")]
    pub reveal: bool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_offered_push_types_are_the_librarys() {
        let offered = super::push_types().0.to_vec();
        let all: Vec<&str> = apns_provider::PushType::ALL
            .iter()
            .map(|t| t.as_str())
            .collect();
        assert_eq!(offered, all);
    }
}
