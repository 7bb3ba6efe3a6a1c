//! Integration tests, compiled into one binary. Shared helpers live in
//! `support`; tests needing a program or service (`redis-server`, curl,
//! openssl...) are ignored without it, or fail under `CI=true`
//! (`support::prerequisites`).

mod support;

mod suite {
    // Broadcast push and channel management through the library, against the mock.
    mod broadcast;
    // `apns channel` and `apns broadcast`: outputs, exit codes, dry runs, curl export.
    mod broadcast_cli;
    // Bulk sends from a tokens file: results, summary, prune list, doctor, Ctrl-C, progress bar.
    mod bulk;
    // The token cache's rules over hours of injected clock.
    mod cache;
    // Certificate mode: every form of certificate, mutual TLS, inspection, expiry, topics.
    mod certs;
    // The `apns` binary's send, token, mock and demo commands and their exit codes.
    mod cli;
    // What the CLI tells its user: help, completions, hints, errors up front, warnings once.
    mod cli_messages;
    // Sends over real TLS and HTTP/2 against the mock, and every rejection it makes.
    mod e2e;
    // Each fault the mock injects: every send resolves before its deadline, the counts add up.
    mod faults;
    // Numeric flags of every command: range-checked, usage errors, never a panic.
    mod flags;
    // `apns serve`: authentication, results in order, limits, apps from profiles, TLS, stop.
    mod gateway;
    // The gateway's connections: deadlines, eviction, shutdown, limits, counter, readiness.
    mod gateway_connections;
    // apns serve's input: huge bodies, duplicate keys, the API token file.
    mod gateway_input;
    // Property tests of the gateway's body parser: any bytes, typed, bounded.
    mod gateway_props;
    // Header sizes: channel ids at most 256 bytes, the mock's 16 KiB header-list limit.
    mod header_limits;
    // Key loading, key and team ids, the token format checked by independent verifiers.
    mod keys;
    // Key stores (file, keychain, environment), profiles, permissions, a TRACE redaction scan.
    mod keystore;
    // Prometheus metrics of `apns serve` and `apns send --metrics-listen`.
    mod metrics;
    // The mock as a long-running server: bounded memory, timeouts, idle GOAWAY, descriptor limit.
    mod mock_server;
    // Typed notification fields: invalid values refused before sending, naming the field.
    mod model;
    // Riding out outages: storms, timed outages, black holes, drops; README's table checked.
    mod outages;
    // The payload builder's JSON, raw passthrough, size limits at their boundaries.
    mod payload;
    // Secrets written into a profile file are refused and never printed.
    mod profile_secrets;
    // Property tests of the parsers: tokens, payloads, responses, JWTs, PEMs, tokens-file lines.
    mod props;
    // Sends through an HTTPS CONNECT proxy: authentication, NO_PROXY, doctor's proxy hop.
    mod proxy;
    // Timeouts name their stage (TCP, CONNECT at the proxy, TLS, SETTINGS); proxy values never show a password.
    mod proxy_stages;
    // Keys and tokens never show in Debug output or error messages.
    mod redaction;
    // `apns send --resume`: a cut-short bulk send finished without sending anything twice.
    mod resume;
    // The soak run: serve and two workers through cycling faults and hostile clients.
    mod soak;
    // How a bulk send stops: unwritable outputs, the first and second Ctrl-C.
    mod stopping;
    // Tokens files as they come: BOM, Latin-1, non-UTF-8, huge lines; outputs never overwrite it.
    mod tokens_file;
    // `apns enqueue` and `apns worker` on a real Redis: one result per job through kills and restarts.
    mod worker;
    // apns worker against oversized, malformed and duplicate-key jobs, and a Redis wanting a password.
    mod worker_input;
}
