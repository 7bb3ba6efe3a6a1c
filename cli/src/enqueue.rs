//! `apns enqueue`: one job per device token, added to a Redis stream in
//! pipelined batches, for `apns worker` processes to send.

use apns_provider::worker::{Job, Producer};

use super::args::EnqueueArgs;
use super::failure::{exit, Failure};
use super::input::{count_lines, spawn_reader};
use super::report::Progress;

/// Jobs per pipeline of `XADD`s.
const BATCH: usize = 1000;

pub async fn run(args: EnqueueArgs) -> Result<u8, Failure> {
    let reads_stdin =
        |p: &Option<std::path::PathBuf>| p.as_ref().is_some_and(|p| p.as_os_str() == "-");
    let tokens = &args.tokens;
    if tokens.reads_stdin() && reads_stdin(&args.payload.whole.payload_file) {
        return Err(Failure::usage(
            "--tokens-file - and --payload-file - cannot both read stdin",
        ));
    }
    if let Some(app) = &args.app {
        if app.is_empty()
            || app.len() > apns_provider::worker::MAX_ID_BYTES
            || app.chars().any(char::is_control)
        {
            return Err(Failure::usage(format!(
                "--app must be a profile name of 1 to {} bytes, without control characters",
                apns_provider::worker::MAX_ID_BYTES
            )));
        }
    }
    let payload = args.payload.build(tokens.tokens_file.is_some())?;
    let defaults = args.headers.defaults(None, payload)?;
    if let Some(template) = defaults.template() {
        for lint in template.lints() {
            eprintln!("apns: warning: {lint}");
        }
    }
    if let Some(w) = args.headers.reused_id_warning(tokens.many(), "job") {
        eprintln!("{w}");
    }
    let input = tokens.open()?;

    let producer = Producer::connect(&args.redis.url, &args.redis.stream).await?;

    let progress = if tokens.no_progress {
        None
    } else {
        Progress::on_terminal(|| match &tokens.tokens_file {
            Some(path) => count_lines(path),
            None => Some(tokens.device_tokens.len() as u64),
        })
    };
    let mut lines = spawn_reader(tokens.device_tokens.clone(), input.map(|i| i.source));
    let mut tally = Tally::default();
    let mut batch: Vec<Job> = Vec::with_capacity(BATCH);
    let mut ended = false;
    while !ended {
        // A batch: what is ready now, at most BATCH (a slow stdin is not
        // waited for until a batch fills).
        match lines.recv().await {
            None => ended = true,
            Some(line) => {
                let mut next = Some(line);
                while let Some(line) = next.take() {
                    let line = match line {
                        Ok(l) => l,
                        Err(e) => {
                            flush(&producer, &mut batch, &mut tally, &progress).await?;
                            finish(progress, &tally);
                            return Err(Failure::usage(e));
                        }
                    };
                    let line = line.parse(&defaults);
                    match line.notification {
                        Ok(n) => {
                            let mut job =
                                Job::from_notification(uuid::Uuid::new_v4().to_string(), &n);
                            job.app = args.app.clone();
                            batch.push(job);
                        }
                        Err(e) => {
                            tally.invalid += 1;
                            if let Some(p) = &progress {
                                p.tick(true);
                            }
                            let at = line
                                .number
                                .map(|n| format!("line {n}: "))
                                .unwrap_or_default();
                            // Over the progress bar: erased first, then drawn again.
                            let message = format!("apns: {at}invalid: {e}");
                            match &progress {
                                Some(p) => p.say(&message),
                                None => eprintln!("{message}"),
                            }
                        }
                    }
                    if batch.len() < BATCH {
                        next = lines.try_recv();
                    }
                }
            }
        }
        flush(&producer, &mut batch, &mut tally, &progress).await?;
    }
    finish(progress, &tally);
    println!("{}", tally.json(None));
    Ok(if tally.invalid > 0 {
        exit::USAGE
    } else {
        exit::OK
    })
}

#[derive(Default)]
struct Tally {
    enqueued: u64,
    invalid: u64,
    first_id: Option<String>,
    last_id: Option<String>,
}

impl Tally {
    /// `{"enqueued":N,"first_id":"...","last_id":"...","invalid":K}`, in
    /// that order (plus `"error"` after a failure).
    fn json(&self, error: Option<&str>) -> String {
        let text = |v: &Option<String>| serde_json::to_string(v).unwrap_or_else(|_| "null".into());
        let mut line = format!(
            "{{\"enqueued\":{},\"first_id\":{},\"last_id\":{},\"invalid\":{}",
            self.enqueued,
            text(&self.first_id),
            text(&self.last_id),
            self.invalid
        );
        if let Some(e) = error {
            line.push_str(&format!(",\"error\":{}", text(&Some(e.to_string()))));
        }
        line.push('}');
        line
    }
}

fn finish(progress: Option<Progress>, tally: &Tally) {
    if let Some(p) = progress {
        p.stop();
    }
    if tally.invalid > 0 {
        eprintln!(
            "apns: {} invalid line(s) not enqueued; {} job(s) enqueued",
            tally.invalid, tally.enqueued
        );
    }
}

/// Adds the batch with one pipeline of `XADD`s. A failure stops the
/// command (exit 3) with what was surely enqueued: a batch is not sent
/// again blindly. It says "may be in part" only when the connection failed
/// with the batch on its way; Redis's refusals are counted job by job.
async fn flush(
    producer: &Producer,
    batch: &mut Vec<Job>,
    tally: &mut Tally,
    progress: &Option<Progress>,
) -> Result<(), Failure> {
    if batch.is_empty() {
        return Ok(());
    }
    let each = producer.add_each(batch).await;
    let n = batch.len();
    batch.clear();
    let (ids, failure) = match each {
        Ok(each) => {
            let refused = each.iter().filter(|r| r.is_err()).count();
            let first = each.iter().find_map(|r| r.as_ref().err().cloned());
            let ids: Vec<String> = each.into_iter().filter_map(|r| r.ok()).collect();
            // Redis answered each XADD: exactly these landed.
            let failure = first.map(|e| {
                format!(
                    "Redis refused {refused} of a batch of {n} job(s): {e}; those were not enqueued, the other {} were",
                    n - refused
                )
            });
            (ids, failure)
        }
        Err(f) if !f.may_have_landed => (
            Vec::new(),
            Some(format!("{f}; nothing of a batch of {n} job(s) was enqueued")),
        ),
        Err(f) => (
            Vec::new(),
            Some(format!(
                "{f}; the connection failed with a batch of {n} job(s) on its way: it may be in part enqueued"
            )),
        ),
    };
    tally.enqueued += ids.len() as u64;
    if tally.first_id.is_none() {
        tally.first_id = ids.first().cloned();
    }
    if let Some(last) = ids.last() {
        tally.last_id = Some(last.clone());
    }
    if let Some(p) = progress {
        for _ in 0..ids.len() {
            p.tick(false);
        }
    }
    match failure {
        None => Ok(()),
        Some(why) => {
            let message = format!(
                "{why}; {} job(s) surely enqueued in all (the last {})",
                tally.enqueued,
                tally.last_id.as_deref().unwrap_or("none")
            );
            println!("{}", tally.json(Some(&message)));
            Err(Failure {
                code: exit::CONNECTION,
                message,
            })
        }
    }
}
