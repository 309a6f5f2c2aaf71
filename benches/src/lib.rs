//! Shared helpers of the gort benchmarks.
