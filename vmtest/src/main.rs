//! `d4c-vmtest`: the guest side of d4c's VM suite, one static binary.
//!
//! `scripts/vmtest` boots Debian kernels under qemu with this binary in the
//! initramfs. The guest's init runs its checks, in containers that
//! containerd makes through the CRI. Inside the containers runs the other
//! binary, `d4c-vmtest-agent` (`src/bin/agent.rs`: the agent, the staged
//! actors, `noop` and `pause`).
//!
//! - `smoke [WORKDIR]`: starts a container, performs every op once, checks
//!   the effects; prints `D4C-VMTEST-SMOKE: ok ...` or `... FAIL <reason>`.
//! - `scenarios PATH...`: runs scenario files ([`d4c_vmtest::guest::run`]); prints
//!   `D4C-VMTEST-SCENARIOS: ok` or `... FAIL <reason>`.
//!
//! - `volumes`: what the probes report on each kind of volume a kubelet
//!   mounts ([`d4c_vmtest::volumes::run`]).
//! - `evasion`: ways around drift prevention as real syscalls under the
//!   real probes ([`d4c_vmtest::evasion::run`]); prints
//!   `D4C-VMTEST-EVASION: ok ...` or `... FAILED <reason>`.
//! - `conformance`: an intruder's session and benign activity in two
//!   containers under the real `d4c-runtime`, the documents printed for
//!   the conformance queries ([`d4c_vmtest::conformance::run`]).
//! - `daemonset`: the image users deploy, run as the DaemonSet's pod
//!   through the CRI ([`d4c_vmtest::daemonset_check::run`]); prints
//!   `D4C-VMTEST-DAEMONSET: ok ...` or `... FAIL <reason>`.
//! - `bench [ITERATIONS [ROUNDS]]`: the overhead of the probes on a
//!   syscall-heavy loop in a container, as a ratio in one boot with its
//!   95% confidence interval over the rounds ([`d4c_vmtest::guest::bench`]).
//!
//! The library ([`d4c_vmtest`]) holds the pieces; this file only dispatches.

use d4c_vmtest::{conformance, daemonset_check, evasion, guest, runtime_check, smoke, volumes};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: d4c-vmtest smoke [WORKDIR] | volumes | scenarios PATH... | evasion | runtime | conformance | daemonset | bench [ITERATIONS [ROUNDS]]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match command.as_str() {
        "smoke" => {
            let workdir = rest.first().map_or_else(|| PathBuf::from(smoke::DEFAULT_WORKDIR), PathBuf::from);
            report("D4C-VMTEST-SMOKE", smoke::run(&workdir))
        }
        "evasion" => report("D4C-VMTEST-EVASION", evasion::run()),
        "volumes" => report("D4C-VMTEST-VOLUMES", volumes::run()),
        "runtime" => report("D4C-VMTEST-RUNTIME", runtime_check::run()),
        "conformance" => report("D4C-VMTEST-CONFORMANCE", conformance::run()),
        "daemonset" => report("D4C-VMTEST-DAEMONSET", daemonset_check::run()),
        "bench" => {
            let iterations = rest.first().and_then(|n| n.parse().ok()).unwrap_or(200);
            let rounds = rest.get(1).and_then(|n| n.parse().ok()).unwrap_or(2);
            match guest::bench(iterations, rounds) {
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
