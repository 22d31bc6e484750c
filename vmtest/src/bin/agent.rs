//! `d4c-vmtest-agent`: the binary inside every container: the agent, a
//! staged actor, `noop` (what every executable file of an image runs), and
//! `pause` (a pod sandbox's process).
fn main() -> std::process::ExitCode {
    d4c_vmtest::agent::container_main()
}
