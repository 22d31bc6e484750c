//! The two sides of the ABI agree: the C header's constants equal the Rust
//! ones, and every shared struct in the compiled object's BTF has the size
//! and field offsets of its Rust mirror.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use d4c_kernel_probes::abi;
use object::{Object, ObjectSection};
use std::collections::HashMap;

#[test]
fn header_constants_equal_rust_constants() {
    let defines: HashMap<&str, u64> = abi::HEADER
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("#define")).then_some(())?;
            let name = words.next()?;
            let value = words.next()?.parse().ok()?;
            Some((name, value))
        })
        .collect();
    for (name, value) in abi::CONSTANTS {
        assert_eq!(defines.get(name), Some(value), "`{name}` differs between d4c_abi.h and abi.rs");
    }
    let rust: Vec<&str> = abi::CONSTANTS.iter().map(|(n, _)| *n).collect();
    for name in defines.keys() {
        assert!(rust.contains(name), "`{name}` of d4c_abi.h has no Rust mirror in abi::CONSTANTS");
    }
}

/// A struct of the BTF: its size and its members' byte offsets.
struct BtfStruct {
    size: usize,
    members: Vec<(String, usize)>,
}

/// The structs of a .BTF section (format: include/uapi/linux/btf.h).
fn btf_structs(btf: &[u8]) -> HashMap<String, BtfStruct> {
    let u32_at = |at: usize| u32::from_le_bytes(btf[at..at + 4].try_into().unwrap());
    assert_eq!(u16::from_le_bytes([btf[0], btf[1]]), 0xeb9f, "not BTF");
    let hdr_len = u32_at(4) as usize;
    let (type_off, type_len, str_off) = (u32_at(8) as usize, u32_at(12) as usize, u32_at(16) as usize);
    let types = hdr_len + type_off;
    let strings = hdr_len + str_off;
    let name = |off: u32| {
        let start = strings + off as usize;
        let end = btf[start..].iter().position(|&b| b == 0).unwrap() + start;
        String::from_utf8(btf[start..end].to_vec()).unwrap()
    };
    let mut out = HashMap::new();
    let mut at = types;
    while at < types + type_len {
        let (name_off, info, size) = (u32_at(at), u32_at(at + 4), u32_at(at + 8));
        let vlen = (info & 0xffff) as usize;
        let kind = (info >> 24) & 0x1f;
        let kind_flag = info >> 31 == 1;
        at += 12;
        let extra = match kind {
            1 | 14 | 17 => 4,
            3 => 12,
            4 | 5 | 15 | 19 => vlen * 12,
            6 | 13 => vlen * 8,
            _ => 0,
        };
        if kind == 4 {
            let members = (0..vlen)
                .map(|i| {
                    let m = at + i * 12;
                    let bits = u32_at(m + 8);
                    let bits = if kind_flag { bits & 0xff_ffff } else { bits };
                    (name(u32_at(m)), bits as usize / 8)
                })
                .collect();
            out.insert(name(name_off), BtfStruct { size: size as usize, members });
        }
        at += extra;
    }
    out
}

#[test]
fn object_btf_matches_rust_layout() {
    // Each shared struct must be in one of the objects, and equal in each
    // object that has it.
    let mut structs: Vec<HashMap<String, BtfStruct>> = Vec::new();
    for object in [d4c_kernel_probes::XDP_HARNESS_OBJECT, d4c_kernel_probes::PROBES_OBJECT] {
        let file = object::File::parse(object).unwrap();
        let section = file.section_by_name(".BTF").expect("the object has no .BTF section: compile with -g");
        structs.push(btf_structs(section.data().unwrap()));
    }
    for (name, size, fields) in abi::layouts() {
        let found: Vec<&BtfStruct> = structs.iter().filter_map(|s| s.get(name)).collect();
        assert!(!found.is_empty(), "struct {name} is in no object's BTF (is it used by a program or map?)");
        for s in found {
            assert_eq!(s.size, size, "struct {name}: {} bytes in C, {size} in Rust", s.size);
            let c: Vec<(&str, usize)> = s.members.iter().map(|(n, o)| (n.as_str(), *o)).collect();
            assert_eq!(c, fields, "struct {name}: the fields differ between C and Rust");
        }
    }
}

/// The section a program of probes.bpf.c is attached by, in the
/// `cloud_defend.hook_point` form: `lsm/file_open` is `lsm__file_open`,
/// `tp_btf/sched_process_exec` is `tracepoint__sched_process_exec`,
/// `tracepoint/syscalls/sys_exit_setsid` is
/// `tracepoint__syscalls_sys_exit_setsid`.
fn hook_point_of_section(section: &str) -> String {
    let (family, rest) = section.split_once('/').unwrap();
    let family = if family == "lsm" { "lsm" } else { "tracepoint" };
    format!("{family}__{}", rest.replace('/', "_"))
}

#[test]
fn every_program_stores_the_hook_of_its_section() {
    // The LSM programs cannot run on this machine: this checks their
    // source instead. Each program's body names exactly one D4C_HOOK_*.
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/probes.bpf.c")).unwrap();
    let value = |name: &str| abi::CONSTANTS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v as u32);
    let mut programs = 0;
    for part in source.split("SEC(\"").skip(1) {
        let (section, body) = part.split_once("\")").unwrap();
        if !section.contains('/') {
            continue; // license, maps
        }
        let body = body.split("\n}\n").next().unwrap();
        let hooks: Vec<&str> = body
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|word| word.starts_with("D4C_HOOK_"))
            .collect();
        assert_eq!(hooks.len(), 1, "`{section}` names {hooks:?}, not one D4C_HOOK_*");
        let hook = value(hooks[0]).unwrap_or_else(|| panic!("`{}` is not in abi::CONSTANTS", hooks[0]));
        let name = abi::HOOK_POINTS.iter().find(|(h, _)| *h == hook).map(|(_, n)| *n);
        assert_eq!(name, Some(hook_point_of_section(section).as_str()), "`{section}` stores {}", hooks[0]);
        programs += 1;
    }
    assert_eq!(programs, abi::HOOK_POINTS.len(), "one program per hook");
}
