//! Tests of what the macros generate: expansion snapshots of declared pipelines (pin-project style, in
//! `tests/expand/*.expanded.rs`), identical expansion from the YAML and attribute forms of one pipeline,
//! and a stage swap that changes one word of YAML and nothing else.
//!
//! Regenerate the snapshots with `ROSETTE_BLESS=1 cargo test -p rosette-macros`, then read the diff.

use std::path::PathBuf;

use crate::{attr, lower, validate, yaml};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The generated module of a YAML declaration, pretty-printed.
fn expand_yaml(text: &str) -> String {
    expand_yaml_at(text, Some("test.yaml"))
}

/// As [`expand_yaml`], with `source` as the YAML path of compile-time param errors (`None`: no
/// location prefix, as for the attribute form).
fn expand_yaml_at(text: &str, source: Option<&str>) -> String {
    let valid = yaml::parse(text).and_then(validate::validate).unwrap_or_else(|d| panic!("invalid pipeline: {d:?}"));
    pretty(lower::expand(&valid, quote::quote!(pub), quote::quote!(), source).expect("expands"))
}

fn expand_attr(attr_args: &str, module: &str) -> String {
    let args: proc_macro2::TokenStream = attr_args.parse().unwrap();
    let item: proc_macro2::TokenStream = module.parse().unwrap();
    let (ir, module) = attr::parse(args, item).unwrap_or_else(|d| panic!("attribute form rejected: {d:?}"));
    let valid = validate::validate(ir).unwrap_or_else(|d| panic!("invalid pipeline: {d:?}"));
    let vis = &module.vis;
    pretty(lower::expand(&valid, quote::quote!(#vis), quote::quote!(), None).expect("expands"))
}

fn pretty(tokens: proc_macro2::TokenStream) -> String {
    prettyplease::unparse(&syn::parse2::<syn::File>(tokens).expect("generated code parses"))
}

fn check_snapshot(name: &str) {
    let yaml_path = manifest_dir().join("../pipelines").join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&yaml_path).unwrap();
    // Every document of the file, one module each, in order.
    let source = format!("{name}.yaml");
    let pipelines = yaml::parse_all(&text).unwrap_or_else(|d| panic!("invalid pipeline: {d:?}"));
    let expanded: Vec<String> = pipelines
        .into_iter()
        .map(|p| {
            let valid = validate::validate(p).unwrap_or_else(|d| panic!("invalid pipeline: {d:?}"));
            pretty(lower::expand(&valid, quote::quote!(pub), quote::quote!(), Some(&source)).expect("expands"))
        })
        .collect();
    let expanded = expanded.join("\n");
    let snapshot = manifest_dir().join("tests/expand").join(format!("{name}.expanded.rs"));
    if std::env::var_os("ROSETTE_BLESS").is_some() {
        std::fs::create_dir_all(snapshot.parent().unwrap()).unwrap();
        std::fs::write(&snapshot, &expanded).unwrap();
        return;
    }
    let locked = std::fs::read_to_string(&snapshot)
        .unwrap_or_else(|_| panic!("no snapshot {}; run with ROSETTE_BLESS=1", snapshot.display()));
    assert!(locked == expanded, "expansion of {name}.yaml changed; compare with {}:\n{expanded}", snapshot.display());
}

#[test]
fn reflector_expansion_matches_snapshot() {
    check_snapshot("reflector");
}

#[test]
fn forwarder_expansion_matches_snapshot() {
    check_snapshot("forwarder");
}

#[test]
fn channel_link_expansion_matches_snapshot() {
    check_snapshot("link_reliable");
}

#[test]
fn connection_table_expansion_matches_snapshot() {
    // Both documents: a `reliable_mux` dialer (client) and listener (server).
    check_snapshot("perf_reliable_mux");
}

#[test]
fn swapping_a_channel_is_one_word_of_yaml() {
    let text = std::fs::read_to_string(manifest_dir().join("../pipelines/link_reliable.yaml")).unwrap();
    let reliable = expand_yaml(&text);
    for (word, ty) in [("streaming", "StreamingStage"), ("unordered", "UnorderedStage")] {
        let swapped = text.replace("type: reliable", &format!("type: {word}"));
        assert_eq!(text.lines().zip(swapped.lines()).filter(|(a, b)| a != b).count(), 1);
        let other = expand_yaml(&swapped);
        assert_eq!(reliable.lines().count(), other.lines().count());
        for (a, b) in reliable.lines().zip(other.lines()).filter(|(a, b)| a != b) {
            assert!(
                (a.contains("ReliableStage") && b.contains(ty)) || (a.contains("reliable") && b.contains(word)),
                "unexpected change: {a} → {b}"
            );
        }
    }
}

#[test]
fn yaml_and_attribute_forms_expand_identically() {
    let yaml = r#"
name: mirror
eal:
  memory: no-huge
  memory_mb: 256
  lcores: "0-2"
ports:
  p0:
    device: net_null0
    rx_queues: 2
    tx_queues: 2
    mempool: { size: 8191, cache: 256 }
  p1:
    device: net_ring0
rings:
  handoff: { size: 1024 }
cores:
  - lcore: 1
    burst: 64
    polls:
      - from: p0.rx[0]
        stages:
          - type: rosette::pipeline::stages::ParseUdp
            params: { verify_udp_checksum: true }
          - type: rosette::pipeline::stages::DropUdpPort
            params: { port: 53 }
        to: ring:handoff
      - from: p0.rx[1]
        to: p0.tx[1]
  - lcore: 2
    polls:
      - from: ring:handoff
        stages:
          - type: rosette::pipeline::stages::MacSwap
        to: p1.tx[0]
      - from: p1.rx[0]
        to: p0.tx[0]
"#;
    let attr_args = r#"eal(memory = "no-huge", memory_mb = 256, lcores = "0-2")"#;
    let module = r#"
pub mod mirror {
    port!(p0, device = "net_null0", rx_queues = 2, tx_queues = 2, mempool(size = 8191, cache = 256));
    port!(p1, device = "net_ring0");
    ring!(handoff, size = 1024);
    core!(lcore = 1, burst = 64,
          poll(from = p0.rx[0],
               stages = [rosette::pipeline::stages::ParseUdp { verify_udp_checksum: true },
                         rosette::pipeline::stages::DropUdpPort { port: 53 }],
               to = ring:handoff),
          poll(from = p0.rx[1], to = p0.tx[1]));
    core!(lcore = 2,
          poll(from = ring:handoff, stages = [rosette::pipeline::stages::MacSwap], to = p1.tx[0]),
          poll(from = p1.rx[0], to = p0.tx[0]));
}
"#;
    // Param errors of the YAML form carry `file:line:col`, the attribute form's carry spans instead.
    let from_yaml = expand_yaml_at(yaml, None);
    let from_attr = expand_attr(attr_args, module);
    assert!(
        from_yaml == from_attr,
        "the two front ends expand differently:\n--- yaml\n{from_yaml}\n--- attr\n{from_attr}"
    );
}

#[test]
fn swapping_a_stage_is_one_word_of_yaml() {
    let text = std::fs::read_to_string(manifest_dir().join("../pipelines/reflector.yaml")).unwrap();
    let swapped = text.replace("type: mac_swap", "type: count");
    assert_ne!(text, swapped);
    let (before, after) = (expand_yaml(&text), expand_yaml(&swapped));
    let changed: Vec<(&str, &str)> = before.lines().zip(after.lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(before.lines().count(), after.lines().count());
    // Only the stage's type (its param checks, declaration and constructor) and its statistics name
    // change.
    assert!(!changed.is_empty() && changed.len() <= 8, "{changed:#?}");
    for (a, b) in changed {
        assert!(
            (a.contains("MacSwap") && b.contains("Count")) || (a.contains("mac_swap") && b.contains("count")),
            "unexpected change: {a} → {b}"
        );
    }
}
