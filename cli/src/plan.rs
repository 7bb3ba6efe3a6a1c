//! The plan of `apns send`: every check that needs no network, made once
//! before anything is sent (flags against each other, credentials, the
//! certificate's rules, the payload, the defaults), and the tokens file
//! opened. `send.rs` runs it; `checking.rs` prints it as a dry run or curl.

use std::time::Duration;

use apns_provider::wire::SpecDefaults;
use apns_provider::Endpoint;

use super::args::{SendArgs, TokensArgs};
use super::credentials::Credentials;
use super::failure::Failure;
use super::files;
use super::input::{spawn_reader, Lines};

/// What a send will do, every check that needs no network done: the
/// credentials, where they go, the defaults of every notification, the
/// tokens file opened.
pub struct Plan {
    pub credentials: Credentials,
    /// The profile the credentials came from, if any.
    pub profile: Option<String>,
    pub environment: apns_provider::Environment,
    pub endpoint: Endpoint,
    pub defaults: SpecDefaults,
    pub input: Option<files::Input>,
    /// The certificate's expiry warning, said once already.
    pub said: Option<String>,
}

impl Plan {
    /// Checks the flags against each other, the credentials and the
    /// payload, and says the warnings of the flags once.
    pub fn new(args: &SendArgs) -> Result<Plan, Failure> {
        let tokens = &args.tokens;
        let reads_stdin =
            |p: &Option<std::path::PathBuf>| p.as_ref().is_some_and(|p| p.as_os_str() == "-");
        if tokens.reads_stdin() && reads_stdin(&args.payload.whole.payload_file) {
            return Err(Failure::usage(
                "--tokens-file - and --payload-file - cannot both read stdin",
            ));
        }
        check_resume(args)?;
        let resolved = args.target.resolve()?;
        let payload = args.payload.build(tokens.tokens_file.is_some())?;
        let environment = args.target.environment_for(&resolved)?;
        let endpoint = args.target.server.endpoint_or(environment)?;
        // Precedence: --topic (or APNS_TOPIC), the profile's topic, the
        // certificate's only topic.
        let mut fallback_topic = resolved.topic.clone();
        let said = match &resolved.credentials {
            Credentials::Certificate(cert) => {
                check_certificate(cert.info(), args, &mut fallback_topic)?
            }
            Credentials::Token(_) => None,
        };
        let defaults = args.headers.defaults(fallback_topic, payload)?;
        if defaults.default_topic().is_none() && tokens.tokens_file.is_none() {
            return Err(Failure::usage(
                "--topic is required: the app's bundle id (plus the push type's suffix), or set APNS_TOPIC",
            ));
        }
        // A topic-specific key's scope, checked once for the flags' topic
        // (a tokens-file line's own topic is checked when it is sent).
        if let (Credentials::Token(signer), Some(topic)) =
            (&resolved.credentials, defaults.default_topic())
        {
            signer.check_topic(topic)?;
        }
        lint_flags(&defaults, &tokens.device_tokens)?;
        if let Some(w) = args
            .headers
            .reused_id_warning(tokens.many(), "notification of this run")
        {
            eprintln!("{w}");
        }
        let input = tokens.open()?;
        Ok(Plan {
            profile: resolved.profile,
            credentials: resolved.credentials,
            environment,
            endpoint,
            defaults,
            input,
            said,
        })
    }

    /// The lines to send: the tokens of the command line, or the file's.
    pub fn lines(&mut self, tokens: &TokensArgs) -> Lines {
        spawn_reader(
            tokens.device_tokens.clone(),
            self.input.take().map(|i| i.source),
        )
    }
}

/// With a certificate: its expiry warning, said here once for every path
/// (dry run and curl included) and returned; its only topic as the
/// fallback; and what it cannot send refused now, before any connection
/// (exit 2), not once per notification: a push type that needs a token,
/// then a topic it does not allow.
fn check_certificate(
    info: &apns_provider::CertificateInfo,
    args: &SendArgs,
    fallback_topic: &mut Option<String>,
) -> Result<Option<String>, Failure> {
    let said = info.expiry_warning(
        std::time::SystemTime::now(),
        Duration::from_secs(30 * 86_400),
    );
    if let Some(w) = &said {
        eprintln!("apns: warning: {w}");
    }
    let push_type = args.headers.push_type;
    if push_type.requires_token_auth() {
        info.check_push(push_type, None)?;
    }
    let topic = args.headers.topic.topic.clone().or(fallback_topic.clone());
    if fallback_topic.is_none() {
        *fallback_topic = info.default_topic();
    }
    if topic.is_none() && fallback_topic.is_none() && args.tokens.tokens_file.is_none() {
        return Err(Failure::usage(format!(
            "--topic is required: the certificate allows {}",
            info.allowed_topics().join(", ")
        )));
    }
    if let Some(topic) = &topic {
        info.check_push(push_type, Some(topic))?;
    }
    Ok(said)
}

/// `--resume` needs the tokens file and the results of the run it resumes.
fn check_resume(args: &SendArgs) -> Result<(), Failure> {
    if !args.resume {
        return Ok(());
    }
    if args.results.is_none() || args.tokens.tokens_file.is_none() {
        return Err(Failure::usage(
            "--resume needs --tokens-file and --results: the same tokens file and the results file of the run to resume",
        ));
    }
    if !args.tokens.device_tokens.is_empty() {
        return Err(Failure::usage(
            "--resume works on a tokens file alone: device tokens on the command line have no line numbers to resume from",
        ));
    }
    Ok(())
}

/// Lints of the flags apply to every plain-token line: said once. Tokens
/// on the command line are checked before anything else happens, and
/// linted (a tokens file is not: one warning per line would drown the
/// results).
fn lint_flags(defaults: &SpecDefaults, device_tokens: &[String]) -> Result<(), Failure> {
    let Some(template) = defaults.template() else {
        for t in device_tokens {
            apns_provider::DeviceToken::new(t)
                .map_err(|e| Failure::usage(format!("{e} (token {t:?})")))?;
        }
        return Ok(());
    };
    for lint in template.lints() {
        eprintln!("apns: warning: {lint}");
    }
    for t in device_tokens {
        let token = apns_provider::DeviceToken::new(t)
            .map_err(|e| Failure::usage(format!("{e} (token {t:?})")))?;
        for lint in template.with_device_token(token).lints() {
            if lint.code == "device-token-short" {
                eprintln!("apns: warning: {lint}");
            }
        }
    }
    Ok(())
}
