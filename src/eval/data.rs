//! Readers for the published dataset formats. Placeholder: being written.
