//! Integration tests, compiled into one binary. Shared helpers live in
//! `support`.

mod support;

mod suite {
    mod bulk;
    mod cache;
    mod certs;
    mod cli;
    mod e2e;
    mod faults;
    mod keys;
    mod keystore;
    mod mock_server;
    mod model;
    mod outages;
    mod payload;
    mod props;
    mod redaction;
}
