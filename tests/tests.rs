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
    // The soak run of issue 19: serve and two workers through cycling faults.
    mod soak;
    mod stopping;
    mod worker;
}
