//! Fuzz target `tables`: structure-aware mutations of valid artifacts
//! through the table reader and evaluation (issue 14, fault 1).
//!
//! An input is a stream of choices: which golden artifact to start from,
//! then which fields of its table records, metadata, section table and
//! header to set to which boundary values, which records and lists to
//! truncate, duplicate, remove, swap or grow, which class dimension to grow
//! consistently. The artifact is written again with every digest
//! recomputed (and signed with a test key if it was signed), so that each
//! mutation reaches `Tables::read` and evaluation past SHA-256. The
//! mutations and the checks are in `tests/structure/mod.rs`, shared with
//! the test `tables_reader_survives_structure_aware_mutations`: nothing
//! panics, no allocation is out of proportion to the file, a refusal is an
//! error with a message, and tables that are read decide events as the
//! rows the runtime writes say, and write back the same.
#![no_main]

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/structure/mod.rs"]
mod structure;

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: structure::CountingAlloc = structure::CountingAlloc;

fuzz_target!(|input: &[u8]| {
    structure::check(input);
});
