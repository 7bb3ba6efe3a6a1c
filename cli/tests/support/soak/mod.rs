//! The parts of the soak run (`tests/suite/soak.rs`), one module for each thing they hold.
//!
//! Processes watched for their memory and their death (`process`), a
//! loopback relay that stands for the mock's fixed port (`relay`), a
//! one-shot HTTP/1.1 client that reports instead of panicking (`http`),
//! hostile clients (`hostile`), the shared tally (`state`), the good
//! traffic and the probes (`traffic`), RSS sampling and the least-squares
//! slope (`rss`), and the checks of the results (`results`).

mod hostile;
mod http;
mod process;
mod relay;
mod results;
mod rss;
mod state;
mod traffic;

pub use hostile::{h2_idle, silent_sockets, slowloris};
pub use process::{Proc, Setup};
pub use relay::Relay;
pub use results::{all_entries, check_results, drain};
pub use rss::{rss_table, sample};
pub use state::{Counts, Shared};
pub use traffic::{hostiles_burst, probes, traffic, TOKEN};
