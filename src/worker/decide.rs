//! What to do with a job, decided without Redis.

use super::job::JobResult;
use super::queue::Fields;

/// What one delivery of a job came to, for the finisher.
pub(super) enum Action {
    /// A result to write; the job is done.
    Result(JobResult),
    /// A result, and the job's fields to the dead letter; the job is done.
    Dead {
        result: JobResult,
        fields: Fields,
        error: String,
        deliveries: u64,
    },
    /// Failed before reaching APNs: stays pending, to be claimed and tried
    /// again; the marker records the error.
    Retry { marker: String },
    /// May have reached APNs (at-least-once): stays pending with its
    /// `sending` marker, to be sent again when claimed.
    Release,
}
