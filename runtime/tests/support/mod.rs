//! Test support for the delivery tests.

pub mod es_emulator;
