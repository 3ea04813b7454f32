//! Loop metrics: what the loop counts about itself.

/// Counters the loop keeps as it runs (a field of [`Core`](crate::Core)).
#[derive(Default)]
pub(crate) struct Counters {
    /// Panics caught at dispatch.
    pub(crate) panics: u64,
    /// Callbacks that ran past the slow-callback threshold.
    pub(crate) slow_callbacks: u64,
}
