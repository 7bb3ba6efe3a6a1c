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
    mod gateway;
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
    mod redaction;
    mod resume;
    mod stopping;
    mod worker;
    // apns worker against oversized, malformed and duplicate-key jobs, and a Redis wanting a password.
    mod worker_hostile;
}
