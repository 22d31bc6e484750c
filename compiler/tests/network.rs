//! The `network:` section: what its rules mean (the direct evaluator on
//! policies read from YAML), that the lint's covering rule is sound for its
//! values, and that no artifact is ever compiled from it while the tables
//! cannot hold it (`D4C0044`).

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use d4c_artifact::event::{Container, Event, NetworkEvent, User};
use d4c_artifact::net::{Cidr, PortRange, Transport};
use d4c_artifact::ops::{Actions, Operation};
use d4cc::ast::ConditionKey;
use d4cc::codes::Code;
use d4cc::compile::{compile, CompileError, CompileOptions};
use d4cc::direct;
use d4cc::lint::lint_bytes;
use d4cc::lower::LowerError;
use d4cc::model::{CheckedPolicy, SelectorModel, Values};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use std::net::IpAddr;

/// Egress from the `web` image blocked, except to the cluster's networks on
/// the web ports; DNS to one resolver allowed; curl's connections logged.
const EGRESS: &str = r#"
network:
  selectors:
    - name: egress
      operation: [connect, sendTo]
      containerImageName: [web]
    - name: allowed
      destinationAddress: [10.0.0.0/8, "fd00::/8"]
      destinationPort: [443, "8000-8999"]
      transport: [tcp]
    - name: dns
      destinationAddress: [10.96.0.10]
      destinationPort: [53]
      transport: [udp]
    - name: curl
      operation: [connect]
      processName: [curl]
  responses:
    - match: [egress]
      exclude: [allowed, dns]
      actions: [alert, block]
    - match: [curl]
      actions: [log]
"#;

fn checked(text: &str) -> (CheckedPolicy, Vec<Code>) {
    let (_, output) = lint_bytes("network.yaml", text.as_bytes().to_vec());
    let codes = output.diagnostics.iter().map(|d| d.code).collect();
    (output.checked.unwrap(), codes)
}

fn event(operation: Operation, transport: Transport, address: &str, port: u16, name: &str) -> Event {
    Event::Network(NetworkEvent {
        operation,
        transport,
        address: address.parse().unwrap(),
        port,
        executable: format!("/usr/bin/{name}"),
        name: name.into(),
        user: User::root(),
    })
}

fn web() -> Container {
    Container { image_name: Some("web".into()), ..Container::default() }
}

#[test]
fn a_policy_that_blocks_egress_except_to_a_cidr_and_port_list_means_what_it_says() {
    let (policy, codes) = checked(EGRESS);
    // Checked in full: the only finding is that it cannot be compiled.
    assert_eq!(codes, vec![Code::NetworkNotCompiled]);
    let block = Actions::ALERT.union(Actions::BLOCK);
    let decide = |e: &Event, c: &Container| direct::evaluate(&policy, c, e).actions;
    use Operation::{Bind, Connect, SendTo};
    use Transport::{Tcp, Udp};
    let cases: &[(Event, Actions)] = &[
        (event(Connect, Tcp, "10.1.2.3", 443, "app"), Actions::NONE),
        (event(Connect, Tcp, "10.1.2.3", 8500, "app"), Actions::NONE),
        (event(Connect, Tcp, "fd00::7", 8999, "app"), Actions::NONE),
        // Outside the list: the address, the port, or the transport.
        (event(Connect, Tcp, "203.0.113.5", 443, "app"), block),
        (event(Connect, Tcp, "10.1.2.3", 22, "app"), block),
        (event(Connect, Udp, "10.1.2.3", 443, "app"), block),
        (event(Connect, Tcp, "fe80::1", 443, "app"), block),
        // The same peer written IPv4-mapped: the same decision.
        (event(Connect, Tcp, "::ffff:10.1.2.3", 443, "app"), Actions::NONE),
        (event(Connect, Tcp, "::ffff:203.0.113.5", 443, "app"), block),
        // An unconnected datagram is egress too; DNS to the resolver is not.
        (event(SendTo, Udp, "8.8.8.8", 53, "app"), block),
        (event(SendTo, Udp, "10.96.0.10", 53, "app"), Actions::NONE),
        // Binding is not egress.
        (event(Bind, Tcp, "0.0.0.0", 8080, "app"), Actions::NONE),
        // curl's connections are logged, and blocked too when not allowed.
        (event(Connect, Tcp, "10.1.2.3", 443, "curl"), Actions::LOG),
        (event(Connect, Tcp, "203.0.113.5", 443, "curl"), block.union(Actions::LOG)),
    ];
    for (e, want) in cases {
        assert_eq!(decide(e, &web()), *want, "{e:?}");
    }
    // Another image's egress is not this policy's business.
    let other = Container { image_name: Some("batch".into()), ..Container::default() };
    assert_eq!(decide(&event(Connect, Tcp, "203.0.113.5", 443, "app"), &other), Actions::NONE);
}

#[test]
fn network_rules_are_never_compiled_into_an_artifact_that_drops_them() {
    let (policy, _) = checked(EGRESS);
    let options = CompileOptions { policy_name: "p".into(), ..CompileOptions::default() };
    match compile(EGRESS.as_bytes(), &policy, &options) {
        Err(CompileError::Lower(LowerError::NetworkNotCompiled { selectors: 4 })) => {}
        other => panic!("expected the network section to be refused, got {other:?}"),
    }
}

#[test]
fn ports_written_as_yaml_integers_are_ports() {
    let (policy, codes) = checked("network:\n  selectors:\n    - name: web\n      destinationPort: [443, 8080]\n  responses:\n    - match: [web]\n      actions: [alert]\n");
    assert_eq!(codes, vec![Code::NetworkNotCompiled]);
    let ports = policy.network.selectors[0].condition(ConditionKey::DestinationPort).cloned();
    assert_eq!(ports, Some(Values::Ports(vec![PortRange::parse("443").unwrap(), PortRange::parse("8080").unwrap()])));
}

// ---- covering is sound for network selectors -----------------------------

const BLOCKS: &[&str] =
    &["10.0.0.0/8", "10.1.0.0/16", "10.1.2.3", "0.0.0.0/0", "::/0", "fd00::/8", "fd00::7", "::ffff:10.1.0.0/112"];
const PORTS: &[&str] = &["443", "0-1023", "8000-8999", "8500", "0-65535", "53"];
const ADDRESSES: &[&str] =
    &["10.1.2.3", "10.1.9.9", "10.2.0.1", "203.0.113.5", "fd00::7", "fe80::1", "::ffff:10.1.2.3"];
const NETWORK_OPS: &[Operation] = &[Operation::Connect, Operation::SendTo, Operation::Bind, Operation::Listen];

fn network_selector() -> impl Strategy<Value = SelectorModel> {
    let some = |n: usize| 1..=n;
    (
        prop::option::of(subsequence(NETWORK_OPS.to_vec(), some(NETWORK_OPS.len()))),
        prop::option::of(subsequence(BLOCKS.to_vec(), some(3))),
        prop::option::of(subsequence(PORTS.to_vec(), some(3))),
        prop::option::of(subsequence(Transport::ALL.to_vec(), some(2))),
    )
        .prop_map(|(ops, blocks, ports, transports)| {
            let mut conditions = Vec::new();
            if let Some(ops) = ops {
                conditions.push((ConditionKey::Operation, Values::Operations(ops)));
            }
            if let Some(blocks) = blocks {
                let mut v: Vec<Cidr> = blocks.iter().map(|b| Cidr::parse(b).unwrap()).collect();
                v.sort();
                v.dedup();
                conditions.push((ConditionKey::DestinationAddress, Values::Addresses(v)));
            }
            if let Some(ports) = ports {
                let mut v: Vec<PortRange> = ports.iter().map(|p| PortRange::parse(p).unwrap()).collect();
                v.sort();
                v.dedup();
                conditions.push((ConditionKey::DestinationPort, Values::Ports(v)));
            }
            if let Some(transports) = transports {
                conditions.push((ConditionKey::Transport, Values::Transports(transports)));
            }
            conditions.sort_by_key(|(k, _)| *k);
            SelectorModel { name: "s".into(), conditions }
        })
}

fn network_event() -> impl Strategy<Value = Event> {
    (
        select(NETWORK_OPS.to_vec()),
        select(Transport::ALL.to_vec()),
        select(ADDRESSES.to_vec()),
        select(vec![0u16, 22, 53, 443, 8500, 9000, 65535]),
    )
        .prop_map(|(operation, transport, address, port)| {
            let address: IpAddr = address.parse().unwrap();
            Event::Network(NetworkEvent {
                operation,
                transport,
                address,
                port,
                executable: "/usr/bin/app".into(),
                name: "app".into(),
                user: User::root(),
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// `D4C0031` (a response whose excludes cover its matches) is only
    /// right if `covers` is: a selector that covers another matches every
    /// network event the other matches.
    #[test]
    fn a_covering_network_selector_matches_everything_the_covered_one_does(
        a in network_selector(),
        b in network_selector(),
        e in network_event(),
    ) {
        let container = web();
        if a.covers(&b) && direct::selector_matches(&b, &container, &e) {
            prop_assert!(direct::selector_matches(&a, &container, &e), "{a:?} covers {b:?} but not {e:?}");
        }
    }
}
