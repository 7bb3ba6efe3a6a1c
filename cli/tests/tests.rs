//! Integration tests, compiled into one binary. Shared helpers live in
//! `support`.

mod support;

mod suite {
    mod broadcast;
    mod broadcast_cli;
    mod bulk;
    mod cache;
    mod certs;
    mod cli;
    mod e2e;
    mod faults;
    // Numeric flags of every command: range-checked, usage errors, never a panic.
    mod flags;
    mod gateway;
    // The gateway's connections: deadlines, eviction, shutdown, limits, counter, readiness.
    mod gateway_connections;
    // apns serve's input: huge bodies, duplicate keys, the API token file.
    mod gateway_input;
    // Property tests of the gateway's body parser: any bytes, typed, bounded.
    mod gateway_props;
    // Header sizes: channel ids at most 256 bytes, the mock's 16 KiB header-list limit.
    mod header_limits;
    mod hostile_input;
    mod keys;
    mod keystore;
    mod metrics;
    mod mock_server;
    mod model;
    mod newcomer;
    mod outages;
    mod payload;
    mod profile_secrets;
    mod props;
    mod proxy;
    // Timeouts name their stage (TCP, CONNECT at the proxy, TLS, SETTINGS); proxy values never show a password.
    mod proxy_stages;
    mod redaction;
    mod resume;
    // The soak run of issue 19: serve and two workers through cycling faults.
    mod soak;
    mod stopping;
    mod worker;
    // apns worker against oversized, malformed and duplicate-key jobs, and a Redis wanting a password.
    mod worker_hostile;
}
