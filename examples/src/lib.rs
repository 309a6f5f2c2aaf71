//! Examples of gort live in this crate's `[[example]]` targets; see `tour.rs`.
