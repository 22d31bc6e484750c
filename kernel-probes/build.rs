//! Compiles the BPF C programs with Debian's clang into OUT_DIR.

use std::path::PathBuf;
use std::process::Command;

/// The programs always built; `xdp_harness` only with the `harness` feature.
const PROGRAMS: &[&str] = &["probes"];

fn main() {
    if let Err(message) = build() {
        // A build script reports failure by exiting non-zero.
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn build() -> Result<(), String> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let clang = std::env::var("D4C_CLANG").unwrap_or_else(|_| "clang".to_string());
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".to_string());
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    // bpf_tracing.h's PT_REGS/BPF_PROG macros need the target architecture.
    let target_arch = match arch.as_str() {
        "x86_64" => "x86",
        "aarch64" => "arm64",
        other => other,
    };
    if !PathBuf::from("/usr/include/bpf/bpf_helpers.h").exists() {
        return Err("libbpf's headers (/usr/include/bpf/bpf_helpers.h) are missing: run scripts/setup \
                    (it installs `clang libbpf-dev`)"
            .to_string());
    }
    println!("cargo:rerun-if-changed=include");
    println!("cargo:rerun-if-changed=src/xdp_harness.bpf.c");
    for header in ["src/decide.bpf.h", "src/path.bpf.h", "src/task.bpf.h"] {
        println!("cargo:rerun-if-changed={header}");
    }
    println!("cargo:rerun-if-env-changed=D4C_CLANG");
    let harness = std::env::var_os("CARGO_FEATURE_HARNESS").is_some();
    for program in PROGRAMS.iter().copied().chain(harness.then_some("xdp_harness")) {
        let source = manifest.join("src").join(format!("{program}.bpf.c"));
        let object = out.join(format!("{program}.bpf.o"));
        println!("cargo:rerun-if-changed={}", source.display());
        let status = Command::new(&clang)
            .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
            .arg(format!("-D__TARGET_ARCH_{target_arch}"))
            .arg("-I")
            .arg(manifest.join("include"))
            .arg("-I")
            .arg(manifest.join("include").join("vmlinux"))
            .arg("-I")
            .arg(&multiarch)
            .arg("-c")
            .arg(&source)
            .arg("-o")
            .arg(&object)
            .status()
            .map_err(|e| format!("cannot run `{clang}` ({e}): run scripts/setup (it installs `clang libbpf-dev`)"))?;
        if !status.success() {
            return Err(format!("`{clang}` failed to compile {}", source.display()));
        }
    }
    Ok(())
}
