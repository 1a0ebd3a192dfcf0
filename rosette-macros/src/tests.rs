//! Unit tests of the whole front half: YAML parse, attribute parse, lowering, every validation rule.

use quote::quote;

use crate::diag::{Diagnostic, Loc};
use crate::ir::{self, ParamValue, Sink, Source};
use crate::validate::{validate, ValidPipeline};
use crate::{attr, yaml};

/// The complete example of `SCHEMA.md`, also a UI test fixture.
const EXAMPLE: &str = include_str!("../tests/ui/forwarder.yaml");

fn render(diags: &[Diagnostic]) -> Vec<String> {
    diags.iter().map(|d| format!("{}: {}", d.loc, d.message)).collect()
}

fn yaml_ok(text: &str) -> ValidPipeline {
    match yaml::parse(text).and_then(validate) {
        Ok(v) => v,
        Err(e) => panic!("unexpected errors: {:#?}", render(&e)),
    }
}

fn yaml_errors(text: &str) -> Vec<String> {
    match yaml::parse(text).and_then(validate) {
        Ok(_) => panic!("expected errors"),
        Err(e) => render(&e),
    }
}

/// The example with `from` replaced by `to` (the first occurrence, which must exist).
fn example_with(from: &str, to: &str) -> String {
    assert!(EXAMPLE.contains(from), "fixture lacks {from:?}");
    EXAMPLE.replacen(from, to, 1)
}

fn assert_one_error(text: &str, expected: &str) {
    let errors = yaml_errors(text);
    assert_eq!(errors, vec![expected.to_owned()], "for input:\n{text}");
}

#[test]
fn example_parses_and_validates() {
    let valid = yaml_ok(EXAMPLE);
    let p = &valid.pipeline;
    assert_eq!(p.name.value, "forwarder");
    assert_eq!(p.eal.memory.value, ir::MemoryMode::NoHuge);
    assert_eq!(p.eal.lcores.value, vec![0, 1, 2]);
    assert_eq!(valid.main_lcore, 0);
    assert_eq!(p.eal.extra_args[0].value, "--in-memory");
    assert_eq!(p.ports.len(), 2);
    assert_eq!(p.ports[0].tx_queues.value, 2);
    assert_eq!(p.ports[1].rx_descriptors.value, ir::DEFAULT_DESCRIPTORS);
    assert_eq!(p.ports[1].mempool.size.value, ir::DEFAULT_MEMPOOL_SIZE);
    assert_eq!(p.rings[0].size.value, 1024);
    assert_eq!(valid.ring_producers, vec![vec![1]]);
    let poll = &p.cores[0].polls[0];
    assert_eq!(poll.from.value, Source::PortRx { port: "p0".into(), queue: 0 });
    assert_eq!(poll.to.value, Sink::Ring("handoff".into()));
    assert_eq!(poll.stages[1].ty.value, "crate::Filter");
    assert_eq!(poll.stages[1].params[0].name.value, "max_len");
    assert_eq!(poll.stages[1].params[0].value.value, ParamValue::Int(1500));
    assert_eq!(poll.stages[1].params[1].value.value, ParamValue::Str("udp".into()));
}

#[test]
fn yaml_locations_are_line_and_column() {
    let p = yaml::parse(EXAMPLE).unwrap();
    match p.ports[0].device.loc {
        Loc::Yaml { line, column } => assert_eq!((line, column), (13, 13)),
        other => panic!("{other:?}"),
    }
    match p.cores[1].polls[0].from.loc {
        Loc::Yaml { line, .. } => assert_eq!(line, 36),
        other => panic!("{other:?}"),
    }
}

#[test]
fn minimal_yaml_gets_defaults() {
    let v = yaml_ok(
        "name: m\neal:\n  lcores: [0, 1]\nports:\n  p:\n    device: net_null0\ncores:\n  - lcore: 1\n    polls:\n      - from: p.rx[0]\n",
    );
    let p = v.pipeline;
    assert_eq!(p.eal.memory.value, ir::MemoryMode::Auto);
    assert_eq!(p.cores[0].burst.value, ir::DEFAULT_BURST);
    assert_eq!(p.cores[0].polls[0].to.value, Sink::Drop);
    assert!(p.rings.is_empty());
    assert_eq!(v.main_lcore, 0);
}

#[test]
fn lcores_as_single_integer_and_param_kinds() {
    let text = example_with("lcores: \"0-2\"", "lcores: [0, 1, 2]").replacen(
        "proto: \"udp\"",
        "proto: \"udp\", ratio: 0.5, on: true, neg: -3",
        1,
    );
    let p = yaml_ok(&text).pipeline;
    let params = &p.cores[0].polls[0].stages[1].params;
    assert_eq!(params[2].value.value, ParamValue::Float(0.5));
    assert_eq!(params[3].value.value, ParamValue::Bool(true));
    assert_eq!(params[4].value.value, ParamValue::Int(-3));
}

// ---- parse errors (serde) ----

#[test]
fn unknown_field_is_located() {
    let errors = yaml_errors(&example_with("    shared_tx: false", "    shared_tx: false\n    colour: red"));
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("20:5: unknown field `colour`"), "{errors:?}");
}

#[test]
fn wrong_type_is_located() {
    let errors = yaml_errors(&example_with("rx_queues: 1", "rx_queues: one"));
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("14:16: "), "{errors:?}");
}

#[test]
fn missing_field_is_reported() {
    let errors = yaml_errors(&example_with("    device: net_ring0      # everything else defaulted\n", ""));
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("missing field `device`"), "{errors:?}");
}

// ---- lowering errors ----

#[test]
fn bad_endpoint_and_memory_mode_and_lcore_list() {
    let text = example_with("from: p0.rx[0]", "from: p0.rx0")
        .replacen("to: p1.tx[0]", "to: p1.sideways", 1)
        .replacen("memory: no-huge", "memory: lots", 1)
        .replacen("lcores: \"0-2\"", "lcores: \"2-0\"", 1);
    assert_eq!(
        yaml_errors(&text),
        vec![
            "5:11: unknown memory mode `lots`, expected `auto`, `hugepages` or `no-huge`",
            "7:11: empty lcore range `2-0` in lcore list `2-0`",
            "28:15: invalid poll source `p0.rx0`, expected `port.rx[queue]` or `ring:name`",
            "37:13: invalid poll destination `p1.sideways`, expected `port.tx[queue]`, `ring:name` or `drop`",
        ]
    );
}

// ---- validation rules, one test each ----

#[test]
fn unknown_port_reference() {
    assert_one_error(&example_with("to: p0.tx[1]", "to: p9.tx[1]"), "39:13: unknown port `p9`");
}

#[test]
fn unknown_ring_reference() {
    let errors = yaml_errors(&example_with("to: ring:handoff", "to: ring:handof"));
    assert_eq!(errors, vec!["32:13: unknown ring `handof`", "23:3: ring `handoff` is never written",]);
}

#[test]
fn rx_queue_polled_by_two_lcores() {
    assert_one_error(
        &example_with("from: p1.rx[0]", "from: p0.rx[0]").replacen(
            "  p1:\n    device: net_ring0      # everything else defaulted",
            "  p1:\n    device: net_ring0\n    rx_queues: 0",
            1,
        ),
        "39:15: rx queue p0.rx[0] is polled by lcore 1 and lcore 2; an rx queue has exactly one poller",
    );
}

#[test]
fn rx_queue_polled_twice_by_one_lcore() {
    let text = example_with(
        "      - from: p1.rx[0]\n        to: p0.tx[1]",
        "      - from: p1.rx[0]\n        to: p0.tx[1]\n      - from: p1.rx[0]",
    );
    assert_one_error(&text, "40:15: rx queue p1.rx[0] is polled twice by lcore 2");
}

#[test]
fn rx_queue_polled_by_none() {
    assert_one_error(
        &example_with("rx_queues: 1", "rx_queues: 2"),
        "14:16: rx queue p0.rx[1] is not polled by any lcore",
    );
}

#[test]
fn unpolled_rx_queues_of_one_port_are_one_error() {
    assert_one_error(
        &example_with("rx_queues: 1", "rx_queues: 4"),
        "14:16: rx queues p0.rx[1], p0.rx[2] and p0.rx[3] are not polled by any lcore",
    );
    let many = example_with("rx_queues: 1", "rx_queues: 9").replacen("size: 8191", "size: 65535", 1);
    assert_one_error(
        &many,
        "14:16: rx queues p0.rx[1], p0.rx[2], p0.rx[3], p0.rx[4] and 4 more are not polled by any lcore",
    );
}

#[test]
fn tx_queue_written_by_two_lcores() {
    let text = example_with("to: ring:handoff", "to: p0.tx[1]").replacen(
        "      - from: ring:handoff\n        to: p1.tx[0]\n",
        "",
        1,
    );
    let errors = yaml_errors(&text);
    assert_eq!(
        errors,
        vec![
            "37:13: tx queue p0.tx[1] is written by lcore 1 and lcore 2; set `shared_tx: true` on port `p0` to allow it",
            "23:3: ring `handoff` is never written",
            "23:3: ring `handoff` is never read",
        ]
    );
    // The explicit choice makes it legal.
    let shared =
        text.replacen("shared_tx: false", "shared_tx: true", 1).replacen("rings:\n  handoff: { size: 1024 }\n", "", 1);
    yaml_ok(&shared);
}

#[test]
fn lcore_listed_twice() {
    assert_one_error(&example_with("lcore: 2", "lcore: 1"), "33:12: lcore 1 is declared twice in `cores`");
}

#[test]
fn lcore_outside_set() {
    assert_one_error(&example_with("lcore: 2", "lcore: 7"), "33:12: lcore 7 is not in the EAL lcore set (0,1,2)");
}

#[test]
fn main_lcore_as_worker() {
    assert_one_error(
        &example_with("main_lcore: 0", "main_lcore: 1"),
        "25:12: lcore 1 is the main lcore and cannot be a worker",
    );
}

#[test]
fn default_main_lcore_is_first() {
    assert_one_error(
        &example_with("  main_lcore: 0            # default: the first lcore of the set\n", "").replacen(
            "\"0-2\"",
            "\"1-2,0\"",
            1,
        ),
        "24:12: lcore 1 is the main lcore and cannot be a worker",
    );
}

#[test]
fn main_lcore_outside_set() {
    assert_one_error(
        &example_with("main_lcore: 0", "main_lcore: 5"),
        "8:15: main lcore 5 is not in the EAL lcore set (0,1,2)",
    );
}

#[test]
fn eal_lcore_listed_twice() {
    assert_one_error(&example_with("\"0-2\"", "\"0-2,2\""), "7:11: lcore 2 is listed twice in the EAL lcore set");
}

#[test]
fn queue_index_out_of_range() {
    let text = example_with("from: p1.rx[0]", "from: p1.rx[3]").replacen("to: p0.tx[1]", "to: p0.tx[2]", 1);
    assert_eq!(
        yaml_errors(&text),
        vec![
            "38:15: rx queue 3 out of range: port `p1` has 1 rx queue(s)",
            "39:13: tx queue 2 out of range: port `p0` has 2 tx queue(s)",
            "20:3: rx queue p1.rx[0] is not polled by any lcore",
        ]
    );
}

#[test]
fn burst_zero() {
    assert_one_error(&example_with("burst: 32", "burst: 0"), "26:12: burst of lcore 1 must be greater than 0");
}

#[test]
fn burst_not_power_of_two() {
    assert_one_error(&example_with("burst: 32", "burst: 24"), "26:12: burst 24 of lcore 1 is not a power of two");
}

#[test]
fn burst_larger_than_descriptors() {
    assert_one_error(
        &example_with("rx_descriptors: 1024", "rx_descriptors: 16"),
        "26:12: burst 32 of lcore 1 exceeds the 16 rx descriptors of port `p0`",
    );
}

#[test]
fn mempool_too_small() {
    // p0: rx 1×1024 + tx 2×1024 + cache 256 × 2 lcores (1 reads, 2 writes) + one burst of 32.
    assert_one_error(
        &example_with("size: 8191", "size: 2048"),
        "18:22: mempool of port `p0` has 2048 mbufs but needs at least 3616: rx 1×1024 + tx 2×1024 descriptors + cache 256×2 lcore(s) + 32 in flight",
    );
    yaml_ok(&example_with("size: 8191", "size: 3616"));
}

#[test]
fn mempool_cache_too_large() {
    assert_one_error(
        &example_with("cache: 256", "cache: 1024"),
        "18:35: mempool cache 1024 of port `p0` exceeds DPDK's maximum of 512",
    );
}

#[test]
fn duplicate_port_name_and_device() {
    // YAML itself rejects duplicate keys, so duplicate names surface as a parse error with location.
    let errors = yaml_errors(&example_with("  p1:", "  p0:"));
    assert_eq!(errors, vec!["20:3: duplicate mapping key: p0"]);
    assert_one_error(
        &example_with("net_ring0", "net_null0"),
        "21:13: device `net_null0` of port `p1` is already used by port `p0`",
    );
}

#[test]
fn invalid_device() {
    assert_one_error(
        &example_with("net_ring0", "eth0"),
        "21:13: device `eth0` of port `p1` is neither a vdev name (e.g. `net_null0`) nor a PCI address (e.g. `0000:03:00.0`)",
    );
}

#[test]
fn ring_size_not_power_of_two() {
    assert_one_error(
        &example_with("size: 1024 }", "size: 1000 }"),
        "23:20: size 1000 of ring `handoff` is not a power of two (at least 2)",
    );
}

#[test]
fn ring_read_twice_and_unused() {
    let text = example_with("from: p1.rx[0]", "from: ring:handoff")
        .replacen("rings:\n", "rings:\n  spare: { size: 8 }\n", 1)
        .replacen(
            "  p1:\n    device: net_ring0      # everything else defaulted",
            "  p1:\n    device: net_ring0\n    rx_queues: 0",
            1,
        );
    assert_eq!(
        yaml_errors(&text),
        vec![
            "24:3: ring `spare` is never written",
            "24:3: ring `spare` is never read",
            "40:15: ring `handoff` is read by more than one poll",
        ]
    );
}

#[test]
fn invalid_identifiers() {
    let text = example_with("name: forwarder", "name: for-warder")
        .replacen("  p1:", "  fn:", 1)
        .replacen("p1.", "fn.", 2)
        .replacen("handoff:", "2handoff:", 1)
        .replacen("ring:handoff", "ring:2handoff", 2)
        .replacen("max_len:", "max len:", 1);
    assert_eq!(
        yaml_errors(&text),
        vec![
            "3:7: pipeline name `for-warder` is not a valid Rust identifier",
            "20:3: port name `fn` is not a valid Rust identifier",
            "23:3: ring name `2handoff` is not a valid Rust identifier",
            "31:48: stage parameter `max len` is not a valid Rust identifier",
        ]
    );
}

#[test]
fn bad_stage_type_path() {
    assert_one_error(
        &example_with("\"crate::Filter\"", "\"crate::Fil ter\""),
        "31:21: stage type `crate::Fil ter` is not a Rust type path (unexpected token); a user stage is written \
         as a Rust type path such as `crate::MyStage` or `crate::Chan<u8>`",
    );
}

#[test]
fn conflicting_extra_arg() {
    assert_one_error(
        &example_with("[\"--in-memory\"]", "[\"--in-memory\", \"-l\", \"0-3\"]"),
        "10:31: extra EAL argument `-l` conflicts with `eal.lcores`, which generates it",
    );
}

#[test]
fn core_without_polls() {
    let text = example_with(
        "  - lcore: 2\n    burst: 32\n    polls:\n      - from: ring:handoff\n        to: p1.tx[0]\n      - from: p1.rx[0]\n        to: p0.tx[1]\n",
        "  - lcore: 2\n    polls: []\n",
    );
    assert_eq!(
        yaml_errors(&text),
        vec![
            "33:12: lcore 2 has no polls",
            "20:3: rx queue p1.rx[0] is not polled by any lcore",
            "23:3: ring `handoff` is never read",
        ]
    );
}

#[test]
fn all_errors_at_once() {
    let text = example_with("burst: 32", "burst: 0").replacen("lcore: 2", "lcore: 9", 1).replacen(
        "size: 1024 }",
        "size: 3 }",
        1,
    );
    assert_eq!(yaml_errors(&text).len(), 3);
}

#[test]
fn rss_mode_defaults_to_udp_and_parses_none() {
    let valid = yaml_ok(EXAMPLE);
    assert!(valid.pipeline.ports.iter().all(|p| p.rss.value == ir::RssMode::Udp));
    let valid = yaml_ok(&example_with("    shared_tx: false", "    shared_tx: false\n    rss: none"));
    assert_eq!(valid.pipeline.ports[0].rss.value, ir::RssMode::None);
    assert_eq!(valid.pipeline.ports[1].rss.value, ir::RssMode::Udp);
    assert_one_error(
        &example_with("    shared_tx: false", "    shared_tx: false\n    rss: toeplitz"),
        "20:10: unknown RSS mode `toeplitz`, expected `udp` or `none`",
    );
}

// ---- attribute front end ----

fn attr_example() -> (proc_macro2::TokenStream, proc_macro2::TokenStream) {
    let args = quote! {
        eal(memory = "no-huge", memory_mb = 256, lcores = "0-2", main_lcore = 0, file_prefix = "fwd",
            extra_args = ["--in-memory"])
    };
    let item = quote! {
        mod forwarder {
            port!(p0, device = "net_null0", rx_queues = 1, tx_queues = 2, rx_descriptors = 1024,
                  tx_descriptors = 1024, mempool(size = 8191, cache = 256), shared_tx = false);
            port!(p1, device = "net_ring0");
            ring!(handoff, size = 1024);
            core!(lcore = 1, burst = 32,
                  poll(from = p0.rx[0],
                       stages = [mac_swap,
                                 crate::Filter { max_len: 1500, proto: "udp" }],
                       to = ring:handoff));
            core!(lcore = 2, burst = 32,
                  poll(from = ring:handoff, to = p1.tx[0]),
                  poll(from = "p1.rx[0]", to = p0.tx[1]));
            pub struct KeptItem;
        }
    };
    (args, item)
}

fn attr_errors(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> Vec<String> {
    match attr::parse(args, item).and_then(|(p, _)| validate(p)) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.into_iter().map(|d| d.message).collect(),
    }
}

#[test]
fn yaml_and_attributes_lower_to_the_same_ir() {
    let from_yaml = yaml::parse(EXAMPLE).unwrap();
    let (args, item) = attr_example();
    let (from_attr, module) = attr::parse(args, item).unwrap();
    assert_eq!(from_yaml, from_attr);
    // Non-declaration items survive.
    assert_eq!(module.content.unwrap().1.len(), 1);
    assert!(validate(from_attr).is_ok());
}

#[test]
fn attribute_locations_are_spans() {
    let (args, item) = attr_example();
    let (p, _) = attr::parse(args, item).unwrap();
    assert!(matches!(p.ports[0].device.loc, Loc::Tokens(_)));
}

#[test]
fn attribute_unknown_field_and_wrong_type() {
    let errors = attr_errors(
        quote!(eal(lcores = [0, 1], colour = "red")),
        quote! {
            mod m {
                port!(p, device = "net_null0", rx_queues = "one", speed = 10);
                core!(lcore = 1, poll(from = p.rx[0]));
            }
        },
    );
    assert_eq!(
        errors,
        vec![
            "unknown field `colour` in `eal`, expected one of: memory, memory_mb, lcores, main_lcore, file_prefix, extra_args",
            "unknown field `speed` in `port!`, expected one of: device, rx_queues, tx_queues, rx_descriptors, tx_descriptors, mempool, shared_tx, rss",
            "expected an integer for `rx_queues`",
        ]
    );
}

#[test]
fn attribute_rss_mode() {
    let (args, item) = attr_example();
    let item = syn::parse2::<proc_macro2::TokenStream>(item).unwrap().to_string().replacen(
        "shared_tx = false",
        "shared_tx = false , rss = none",
        1,
    );
    let (p, _) = attr::parse(args.clone(), item.parse().unwrap()).unwrap();
    assert_eq!(p.ports[0].rss.value, ir::RssMode::None);
    assert_eq!(p.ports[1].rss.value, ir::RssMode::Udp);
    let item = quote! {
        mod m {
            port!(p, device = "net_null0", rss = "udp");
            port!(q, device = "net_null1", rss = hash);
            core!(lcore = 1, poll(from = p.rx[0]), poll(from = q.rx[0]));
        }
    };
    assert_eq!(
        attr_errors(quote!(eal(lcores = "0-1")), item),
        vec!["unknown RSS mode `hash`, expected `udp` or `none`"]
    );
}

#[test]
fn attribute_missing_and_duplicate_fields() {
    let errors = attr_errors(
        quote!(eal(lcores = "0-1")),
        quote! {
            mod m {
                port!(p, rx_queues = 1, rx_queues = 2);
                core!(burst = 32, poll(from = p.rx[0]));
            }
        },
    );
    assert_eq!(
        errors,
        vec![
            "duplicate field `rx_queues` in `port!`",
            "missing field `device` in `port!`",
            "missing field `lcore` in `core!`",
        ]
    );
}

#[test]
fn attribute_validation_errors() {
    let errors = attr_errors(
        quote!(eal(lcores = "0-1")),
        quote! {
            mod m {
                port!(p, device = "net_null0");
                core!(lcore = 1, burst = 24, poll(from = q.rx[0], to = ring:r));
            }
        },
    );
    assert_eq!(
        errors,
        vec![
            "burst 24 of lcore 1 is not a power of two",
            "unknown port `q`",
            "unknown ring `r`",
            "rx queue p.rx[0] is not polled by any lcore",
        ]
    );
}

#[test]
fn attribute_bad_stage_and_endpoint() {
    let errors = attr_errors(
        quote!(eal(lcores = "0-1")),
        quote! {
            mod m {
                port!(p, device = "net_null0");
                core!(lcore = 1, poll(from = p.rx[0], stages = [a::B { x: y.z }, 1 + 2, a::C { ..Default::default() }]));
                core!(lcore = 0, poll(from = p.tx[0]));
            }
        },
    );
    assert_eq!(
        errors,
        vec![
            "a stage parameter must be an integer, float, boolean, string literal or a bare word",
            "expected a stage type path (`crate::Stage`, `crate::Chan<u8>`) or a struct expression \
             (`crate::Stage { field: 1 }`)",
            "`..` is implied: unlisted params take their defaults",
            "invalid poll source `p.tx[0]`, expected `port.rx[queue]` or `ring:name`",
        ]
    );
}

#[test]
fn attribute_requires_inline_module_and_eal() {
    let errors = attr_errors(
        quote!(),
        quote!(
            mod m;
        ),
    );
    assert_eq!(errors, vec!["the pipeline module must be inline: `mod name { ... }`"]);
    let errors = attr_errors(
        quote!(),
        quote!(
            mod m {}
        ),
    );
    assert_eq!(errors, vec!["missing field `eal` in the pipeline attribute"]);
}

#[test]
fn attribute_duplicate_names() {
    // YAML rejects duplicate keys while parsing; the attribute form reaches the validator's rule.
    let errors = attr_errors(
        quote!(eal(lcores = "0-1")),
        quote! {
            mod m {
                port!(p, device = "net_null0");
                port!(p, device = "net_null1", rx_queues = 0);
                ring!(r, size = 8);
                ring!(r, size = 8);
                core!(lcore = 1, poll(from = p.rx[0], to = ring:r), poll(from = ring:r));
            }
        },
    );
    assert_eq!(errors, vec!["duplicate port name `p`", "duplicate ring name `r`",]);
}

#[test]
fn remaining_eal_and_port_rules() {
    let text = example_with("memory_mb: 256", "memory_mb: 0")
        .replacen("file_prefix: fwd", "file_prefix: a/b", 1)
        .replacen("rx_descriptors: 1024", "rx_descriptors: 0", 1)
        .replacen(
            "  p1:\n    device: net_ring0      # everything else defaulted",
            "  p1:\n    device: net_ring0\n    rx_queues: 0\n    tx_queues: 0",
            1,
        )
        .replacen("from: p1.rx[0]", "from: ring:handoff", 1)
        .replacen("to: p1.tx[0]", "to: drop", 1)
        .replacen("burst: 32", "burst: 1", 1);
    let errors = yaml_errors(&text);
    assert_eq!(
        errors,
        vec![
            "6:14: memory size must be greater than 0 MiB",
            "9:16: file prefix `a/b` must be non-empty and contain no `/` or spaces",
            "16:21: rx descriptors of port `p0` must be greater than 0",
            "22:16: port `p1` has neither rx nor tx queues",
            "40:15: ring `handoff` is read by more than one poll",
        ]
    );
}

#[test]
fn empty_lcore_set_and_ring_named_like_port() {
    let text = example_with("lcores: \"0-2\"", "lcores: []")
        .replacen("  main_lcore: 0            # default: the first lcore of the set\n", "", 1)
        .replacen("handoff: { size", "p1: { size", 1)
        .replacen("ring:handoff", "ring:p1", 2);
    let errors = yaml_errors(&text);
    assert_eq!(
        errors,
        vec![
            "7:11: the EAL lcore set is empty",
            "22:3: ring `p1` has the same name as a port",
            "24:12: lcore 1 is not in the EAL lcore set (empty)",
            "32:12: lcore 2 is not in the EAL lcore set (empty)",
        ]
    );
}

#[test]
fn valid_pipeline_helpers() {
    let v = yaml_ok(
        &example_with("to: ring:handoff", "to: p0.tx[1]")
            .replacen("      - from: ring:handoff\n        to: p1.tx[0]\n", "", 1)
            .replacen("rings:\n  handoff: { size: 1024 }\n", "", 1)
            .replacen("shared_tx: false", "shared_tx: true", 1),
    );
    assert_eq!(v.tx_writers("p0", 1), vec![1, 2]);
    assert_eq!(v.tx_writers("p0", 0), Vec::<u32>::new());
    assert_eq!(v.port("p1").unwrap().device.value, "net_ring0");
    assert!(v.ring("handoff").is_none());
}

#[test]
fn attribute_generic_stage_matches_yaml_spelling() {
    let (p, _) = attr::parse(
        quote!(eal(lcores = "0-1")),
        quote! {
            mod m {
                port!(p, device = "net_null0");
                core!(lcore = 1, poll(from = p.rx[0], stages = [a::B::<u8> { x: -1 }, c::D::<u16>, e::F::<u8> { x: 1, x: 2 }]));
            }
        },
    )
    .unwrap();
    let stages = &p.cores[0].polls[0].stages;
    assert_eq!(stages[0].ty.value, "a::B<u8>");
    assert_eq!(stages[0].params[0].value.value, ParamValue::Int(-1));
    assert_eq!(stages[1].ty.value, "c::D<u16>");
    let errors = validate(p).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].message, "duplicate parameter `x` of stage `e::F<u8>`");
}

#[test]
fn attribute_generic_stage_in_type_form_needs_no_turbofish() {
    // `a::B<u8>` is not an expression (`a::B < u8 >` chains comparisons): it is read as a type path.
    let (p, _) = attr::parse(
        quote!(eal(lcores = "0-1")),
        quote! {
            mod m {
                port!(p, device = "net_null0");
                core!(lcore = 1, poll(from = p.rx[0],
                      stages = [a::B<u8> { x: -1 }, c::D<(u8, u16), e::F<u32>>, g::H<u8>, mac_swap]));
            }
        },
    )
    .unwrap();
    let stages = &p.cores[0].polls[0].stages;
    let types: Vec<&str> = stages.iter().map(|s| s.ty.value.as_str()).collect();
    assert_eq!(types, ["a::B<u8>", "c::D<(u8,u16),e::F<u32>>", "g::H<u8>", "mac_swap"]);
    assert_eq!(stages[0].params[0].value.value, ParamValue::Int(-1));
    assert!(validate(p).is_ok());
}

#[test]
fn short_stage_names_resolve_and_misspelt_ones_list_the_known_names() {
    let valid = yaml_ok(&example_with(
        "{ type: mac_swap }",
        "{ type: mac_swap }\n          - { type: reliable, params: { endpoint: ingest, port: 7000, peer: \"10.0.0.2:7000\" } }",
    ));
    let stages = &valid.pipeline.cores[0].polls[0].stages;
    assert_eq!(stages[0].short_name(), Some("mac_swap"));
    let path = stages[0].type_path().unwrap();
    assert_eq!(quote!(#path).to_string().replace(' ', ""), "::rosette::pipeline::stages::MacSwap");
    assert_eq!(stages[1].endpoint_name(), Some("ingest"));
    assert_eq!(stages[2].short_name(), None, "a path is not a short name");
    let errors = yaml_errors(&example_with("type: mac_swap", "type: mac_swp"));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(
            "30:21: unknown stage `mac_swp`; did you mean `mac_swap`? built-in stages are: count, drop_all"
        ),
        "{errors:?}"
    );
    assert!(errors[0].contains("reliable, reliable_mux, set_macs, streaming, streaming_mux, unordered"), "{errors:?}");
}

#[test]
fn endpoint_names_are_identifiers_and_unique() {
    let text = example_with(
        "{ type: mac_swap }",
        "{ type: unordered, params: { endpoint: a } }\n          - { type: unordered, params: { endpoint: a } }\n          \
         - { type: unordered, params: { endpoint: \"b c\" } }\n          - { type: unordered, params: { endpoint: 3 } }",
    );
    let errors = yaml_errors(&text);
    assert_eq!(
        errors,
        vec![
            "32:52: endpoint name `b c` is not a valid Rust identifier",
            "33:52: the `endpoint` parameter is a name (a string)",
            "31:52: endpoint `a` is declared by two stages",
        ],
    );
}

#[test]
fn non_finite_floats_are_rejected() {
    let (p, _) = attr::parse(
        quote!(eal(lcores = "0-1")),
        quote! {
            mod m {
                port!(p, device = "net_null0");
                core!(lcore = 1, poll(from = p.rx[0], stages = [a::B { x: 1e999 }], to = p.tx[0]));
            }
        },
    )
    .unwrap();
    let errors = validate(p).unwrap_err();
    assert_eq!(render(&errors), vec!["<tokens>: parameter `x` must be a finite number"]);
}

#[test]
fn attribute_params_take_bare_words_and_duration_literals() {
    let (p, _) = attr::parse(
        quote!(eal(lcores = "0-1")),
        quote! {
            mod m {
                port!(p, device = "net_null0");
                core!(lcore = 1, poll(from = p.rx[0],
                      stages = [reliable { role: connect, rto_min: 200us, window: 64u32, epoch: time }], to = p.tx[0]));
            }
        },
    )
    .unwrap();
    let params: Vec<ParamValue> = p.cores[0].polls[0].stages[0].params.iter().map(|p| p.value.value.clone()).collect();
    assert_eq!(
        params,
        vec![
            ParamValue::Str("connect".into()),
            ParamValue::Str("200us".into()),
            ParamValue::Int(64),
            ParamValue::Str("time".into()),
        ]
    );
}

#[test]
fn a_file_of_several_documents_declares_several_pipelines() {
    let second = EXAMPLE.replacen("name: forwarder", "name: forwarder_b", 1);
    assert_ne!(second, EXAMPLE, "fixture names its pipeline `forwarder`");
    let text = format!("{EXAMPLE}\n---\n{second}");
    let pipelines = yaml::parse_all(&text).unwrap();
    assert_eq!(pipelines.len(), 2);
    assert_eq!(pipelines[0].name.value, "forwarder");
    assert_eq!(pipelines[1].name.value, "forwarder_b");
    // Locations in the second document count lines from the top of the file.
    let first_line = EXAMPLE.lines().count() as u32 + 2;
    match pipelines[1].name.loc {
        Loc::Yaml { line, .. } => assert!(line > first_line, "line {line} is not in the second document"),
        other => panic!("no YAML location: {other:?}"),
    }
    assert_eq!(yaml::parse_all(EXAMPLE).unwrap().len(), 1);
}

#[test]
fn two_documents_of_one_name_are_an_error() {
    let text = format!("{EXAMPLE}\n---\n{EXAMPLE}");
    let errors = yaml::parse_all(&text).unwrap_err();
    assert_eq!(errors.len(), 1, "{:?}", render(&errors));
    assert!(errors[0].message.contains("a pipeline named `forwarder` is already declared"), "{}", errors[0].message);
}

#[test]
fn the_validator_bounds_a_table_as_the_runtime_does() {
    // The validator cannot depend on the runtime; its copy of the bound and the default must agree.
    assert_eq!(crate::validate::MAX_TABLE_CONNECTIONS, rosette::channel::mux::MAX_CONNECTIONS as i128);
    let defaults = rosette::pipeline::mux::TableParams::default();
    assert_eq!(crate::validate::DEFAULT_MAX_CONNECTIONS, defaults.max_connections as i128);
}

#[test]
fn the_connection_table_example_of_schema_md_is_the_ui_fixture() {
    // `tests/ui/pass_mux.rs` compiles the fixture; this keeps SCHEMA.md showing exactly that.
    let schema = include_str!("../SCHEMA.md");
    let fixture = include_str!("../tests/ui/mux.yaml");
    assert!(
        schema.contains(&format!("```yaml\n{fixture}```\n")),
        "SCHEMA.md's table example differs from tests/ui/mux.yaml"
    );
    let pipelines = yaml::parse_all(fixture).unwrap();
    assert_eq!(pipelines.len(), 2);
    for p in pipelines {
        if let Err(e) = validate(p) {
            panic!("{:?}", render(&e));
        }
    }
}

/// Every built-in stage name has its params in `rosette::pipeline::params::stock::builtin_fields`, the
/// table `rosette-graph` checks declarations with (a missing name would go unchecked there).
#[test]
fn every_built_in_stage_has_its_params_for_tools() {
    for (name, _) in ir::BUILTIN_STAGES {
        assert!(rosette::pipeline::params::stock::builtin_fields(name).is_some(), "{name}");
    }
    assert!(rosette::pipeline::params::stock::builtin_fields("crate::Filter").is_none());
}
