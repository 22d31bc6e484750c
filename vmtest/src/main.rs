//! `d4c-vmtest`: the guest side of d4c's VM suite, one static binary.
//!
//! `scripts/vmtest` boots Debian kernels under qemu with this binary in the
//! initramfs. The guest's init runs `smoke` (the infrastructure's own test)
//! and `scenarios` (scenario files as real syscalls in real runc
//! containers). Inside the containers, copies of the same binary are the
//! agent, the staged actors, and every executable a step may exec:
//!
//! - `agent`: the container's init process ([`d4c_vmtest::agent`]).
//! - `stage CMD_FD REP_FD NAME TTY`: a staged actor, run by the agent.
//! - `noop [FD]`: what an exec step runs; exits 0 at once.
//! - `smoke [WORKDIR]`: starts a container, performs every op once, checks
//!   the effects; prints `D4C-VMTEST-SMOKE: ok ...` or `... FAIL <reason>`.
//! - `scenarios PATH...`: runs scenario files ([`d4c_vmtest::guest::run`]); prints
//!   `D4C-VMTEST-SCENARIOS: ok` or `... FAIL <reason>`.
//!
//! - `evasion`: ways around drift prevention as real syscalls under the
//!   real probes ([`d4c_vmtest::evasion::run`]); prints
//!   `D4C-VMTEST-EVASION: ok ...` or `... FAILED <reason>`.
//! - `bench [N]`: the overhead of the probes on a syscall-heavy loop in a
//!   container, as a ratio in one boot ([`d4c_vmtest::guest::bench`]).
//!
//! The library ([`d4c_vmtest`]) holds the pieces; this file only dispatches.

use d4c_vmtest::{agent, evasion, guest, runtime_check, smoke};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: d4c-vmtest agent | stage CMD_FD REP_FD NAME TTY | noop [FD] | smoke [WORKDIR] | scenarios PATH... | evasion | runtime | bench [N]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match command.as_str() {
        "agent" => agent::agent_main(),
        "stage" => agent::stage_main(rest),
        "noop" => agent::noop_main(rest),
        "smoke" => {
            let workdir = rest.first().map_or_else(|| PathBuf::from(smoke::DEFAULT_WORKDIR), PathBuf::from);
            report("D4C-VMTEST-SMOKE", smoke::run(&workdir))
        }
        "evasion" => report("D4C-VMTEST-EVASION", evasion::run()),
        "runtime" => report("D4C-VMTEST-RUNTIME", runtime_check::run()),
        "bench" => {
            let iterations = rest.first().and_then(|n| n.parse().ok()).unwrap_or(200);
            match guest::bench(iterations) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    println!("D4C-VMTEST-BENCH: FAIL {}", one_line(&e));
                    ExitCode::FAILURE
                }
            }
        }
        "scenarios" => {
            if rest.is_empty() {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
            let paths: Vec<PathBuf> = rest.iter().map(PathBuf::from).collect();
            match guest::run(&paths) {
                Ok(true) => {
                    println!("D4C-VMTEST-SCENARIOS: ok");
                    ExitCode::SUCCESS
                }
                Ok(false) => {
                    println!("D4C-VMTEST-SCENARIOS: FAIL some scenario steps failed (see above)");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    println!("D4C-VMTEST-SCENARIOS: FAIL {}", one_line(&e));
                    ExitCode::FAILURE
                }
            }
        }
        other => {
            eprintln!("d4c-vmtest: unknown command `{other}`\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `text` on one console line: newlines become ` | `.
fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" | ")
}

/// Prints a check's result line (`PREFIX: ok SUMMARY` or `PREFIX: FAIL
/// WHY`, what scripts/vmtest reads) and gives its exit status.
fn report(prefix: &str, result: Result<String, String>) -> ExitCode {
    match result {
        Ok(summary) => {
            println!("{prefix}: ok {summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{prefix}: FAIL {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}
