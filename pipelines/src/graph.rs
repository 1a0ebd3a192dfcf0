//! Graphviz DOT of pipeline declarations (what `rosette-graph` prints): one cluster per pipeline; in it
//! each port a cluster with its rx and tx queues, each worker lcore a cluster with its polls, each poll
//! a chain `queue → poll → stage → … → queue`, rings as their own nodes between lcores, and a `drop`
//! node for polls whose rest is freed.
//!
//! The input is what `rosette_config::parse_and_validate` returns, so the drawing shows exactly what
//! the `pipeline!` macro would compile.

use std::fmt::Write;

use rosette_config::ir::{self, MemoryMode, ParamValue, Sink, Source};
use rosette_config::ValidPipeline;

/// The errors of the built-in stages' params that the `pipeline!` macro reports from const evaluation
/// (an unknown param, with its "did you mean"; a value of the wrong kind or out of range; a missing
/// required param), in the macro's words (`path:line:col: stage `reliable`: …`), for the file written
/// as `path`. The validator's errors (`rosette_config::parse_and_validate`, which also makes the
/// run-time checks of `rosette-checks`) come first; these are what is left for a declaration that
/// passed it. User stages (a Rust path) are not checked: their params are known only to rustc.
pub fn param_errors(path: &str, pipelines: &[ValidPipeline]) -> Vec<String> {
    use rosette::pipeline::params::{self, stock};
    let mut errors = Vec::new();
    let at = |loc: rosette_config::Loc| match loc {
        rosette_config::Loc::Yaml { .. } => format!("{path}:{loc}"),
        _ => path.to_owned(),
    };
    for stage in pipelines.iter().flat_map(|v| &v.pipeline.cores).flat_map(|c| &c.polls).flat_map(|p| &p.stages) {
        let Some(fields) = stage.short_name().and_then(stock::builtin_fields) else { continue };
        let label = &stage.ty.value;
        for param in &stage.params {
            let value = match &param.value.value {
                ParamValue::Int(i) => params::ParamValue::Int(*i),
                ParamValue::Float(f) => params::ParamValue::Float(*f),
                ParamValue::Bool(b) => params::ParamValue::Bool(*b),
                ParamValue::Str(s) => params::ParamValue::Str(s),
            };
            let loc = at(param.value.loc);
            errors.extend(params::param_message(fields, label, &loc, &param.name.value, value));
        }
        let given: Vec<&str> = stage.params.iter().map(|p| p.name.value.as_str()).collect();
        errors.extend(params::missing_message(fields, label, &at(stage.ty.loc), &given));
    }
    errors
}

/// Quotes `text` as a DOT string (`"…"`, with `"` and `\` escaped and newlines as `\n`).
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn memory_name(mode: MemoryMode) -> &'static str {
    match mode {
        MemoryMode::Auto => "auto",
        MemoryMode::Hugepages => "hugepages",
        MemoryMode::NoHuge => "no-huge",
    }
}

fn param_text(value: &ParamValue) -> String {
    match value {
        ParamValue::Int(n) => n.to_string(),
        ParamValue::Float(f) => f.to_string(),
        ParamValue::Bool(b) => b.to_string(),
        ParamValue::Str(s) => s.clone(),
    }
}

fn lcore_list(lcores: &[u32]) -> String {
    lcores.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// Node ids, unique across the pipelines of one file.
struct Ids<'a>(&'a str);

impl Ids<'_> {
    fn rx(&self, port: &str, queue: u16) -> String {
        quote(&format!("{}/{port}/rx{queue}", self.0))
    }
    fn tx(&self, port: &str, queue: u16) -> String {
        quote(&format!("{}/{port}/tx{queue}", self.0))
    }
    fn ring(&self, ring: &str) -> String {
        quote(&format!("{}/ring/{ring}", self.0))
    }
    fn drop(&self) -> String {
        quote(&format!("{}/drop", self.0))
    }
    fn poll(&self, lcore: u32, poll: usize) -> String {
        quote(&format!("{}/lcore{lcore}/poll{poll}", self.0))
    }
    fn stage(&self, lcore: u32, poll: usize, stage: usize) -> String {
        quote(&format!("{}/lcore{lcore}/poll{poll}/stage{stage}", self.0))
    }
}

/// The DOT of every pipeline of one declaration file; `title` (the file's path) labels the graph.
pub fn to_dot(title: &str, pipelines: &[ValidPipeline]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(title));
    let _ = writeln!(out, "  label={};", quote(title));
    out.push_str("  labelloc=t;\n  rankdir=LR;\n  compound=true;\n");
    out.push_str("  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n");
    for valid in pipelines {
        pipeline(&mut out, valid);
    }
    out.push_str("}\n");
    out
}

fn pipeline(out: &mut String, valid: &ValidPipeline) {
    let p = &valid.pipeline;
    let name = p.name.value.as_str();
    let ids = Ids(name);
    let eal = &p.eal;
    let mut eal_text = format!(
        "EAL lcores {}, main lcore {}, memory {}",
        lcore_list(&eal.lcores.value),
        valid.main_lcore,
        memory_name(eal.memory.value)
    );
    if let Some(mb) = &eal.memory_mb {
        let _ = write!(eal_text, " ({} MiB)", mb.value);
    }
    if let Some(prefix) = &eal.file_prefix {
        let _ = write!(eal_text, ", file prefix {}", prefix.value);
    }
    let _ = writeln!(out, "  subgraph {} {{", quote(&format!("cluster_{name}")));
    let _ = writeln!(out, "    label={};", quote(&format!("pipeline {name}\n{eal_text}")));
    out.push_str("    style=rounded;\n");

    for port in &p.ports {
        let pname = port.name.value.as_str();
        let _ = writeln!(out, "    subgraph {} {{", quote(&format!("cluster_{name}_port_{pname}")));
        let mut label = format!(
            "port {pname}\n{}\nmempool {} (cache {})",
            port.device.value, port.mempool.size.value, port.mempool.cache.value
        );
        if port.shared_tx.value {
            label.push_str(", shared tx");
        }
        let _ = writeln!(out, "      label={};", quote(&label));
        out.push_str("      style=filled; fillcolor=\"#eef3fb\";\n");
        for q in 0..port.rx_queues.value {
            let _ = writeln!(
                out,
                "      {} [label={}, shape=box, style=filled, fillcolor=\"#cfe0f7\"];",
                ids.rx(pname, q),
                quote(&format!("{pname}.rx[{q}]\n{} desc", port.rx_descriptors.value))
            );
        }
        for q in 0..port.tx_queues.value {
            let _ = writeln!(
                out,
                "      {} [label={}, shape=box, style=filled, fillcolor=\"#f7e3cf\"];",
                ids.tx(pname, q),
                quote(&format!("{pname}.tx[{q}]\n{} desc", port.tx_descriptors.value))
            );
        }
        out.push_str("    }\n");
    }

    for (i, ring) in p.rings.iter().enumerate() {
        let producers = valid.ring_producers.get(i).map_or(0, Vec::len);
        let kind = if producers > 1 { "multi-producer" } else { "single-producer" };
        let _ = writeln!(
            out,
            "    {} [label={}, shape=cds, style=filled, fillcolor=\"#e6f2e1\"];",
            ids.ring(&ring.name.value),
            quote(&format!("ring {}\n{} slots, {kind}", ring.name.value, ring.size.value))
        );
    }

    let mut drops = false;
    for core in &p.cores {
        let lcore = core.lcore.value;
        let _ = writeln!(out, "    subgraph {} {{", quote(&format!("cluster_{name}_lcore_{lcore}")));
        let _ = writeln!(out, "      label={};", quote(&format!("lcore {lcore}\nburst {}", core.burst.value)));
        out.push_str("      style=filled; fillcolor=\"#f6f6f6\";\n");
        for (pi, poll) in core.polls.iter().enumerate() {
            let _ = writeln!(
                out,
                "      {} [label={}, shape=ellipse];",
                ids.poll(lcore, pi),
                quote(&format!("poll {pi}\n{} → {}", poll.from.value, poll.to.value))
            );
            for (si, stage) in poll.stages.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "      {} [label={}, shape=box, style=\"rounded,filled\", fillcolor=white];",
                    ids.stage(lcore, pi, si),
                    quote(&stage_label(stage))
                );
            }
        }
        out.push_str("    }\n");
        for (pi, poll) in core.polls.iter().enumerate() {
            let from = match &poll.from.value {
                Source::PortRx { port, queue } => ids.rx(port, *queue),
                Source::Ring(ring) => ids.ring(ring),
            };
            let to = match &poll.to.value {
                Sink::PortTx { port, queue } => ids.tx(port, *queue),
                Sink::Ring(ring) => ids.ring(ring),
                Sink::Drop => {
                    drops = true;
                    ids.drop()
                }
            };
            let mut chain = vec![from, ids.poll(lcore, pi)];
            chain.extend((0..poll.stages.len()).map(|si| ids.stage(lcore, pi, si)));
            chain.push(to);
            let _ = writeln!(out, "    {};", chain.join(" -> "));
        }
    }
    if drops {
        let _ = writeln!(out, "    {} [label=\"drop\", shape=octagon];", ids.drop());
    }
    out.push_str("  }\n");
}

fn stage_label(stage: &ir::Stage) -> String {
    let mut label = stage.ty.value.clone();
    for param in &stage.params {
        let _ = write!(label, "\n{} = {}", param.name.value, param_text(&param.value.value));
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "name: fwd\neal:\n  lcores: \"0-2\"\nports:\n  p0: { device: net_null0, rx_queues: 2 }\n\
                        rings:\n  r: { size: 1024 }\ncores:\n  - lcore: 1\n    polls:\n      - from: \"p0.rx[0]\"\n\
                        \x20       stages: [ { type: mac_swap }, { type: \"crate::Chan<X>\", params: { name: \"a\\\"b\" } } ]\n\
                        \x20       to: \"ring:r\"\n      - { from: \"p0.rx[1]\" }\n\
                        \x20 - lcore: 2\n    polls:\n      - { from: \"ring:r\", to: \"p0.tx[0]\" }\n";

    #[test]
    fn every_port_queue_lcore_stage_and_ring_is_drawn() {
        let valid = rosette_config::parse_and_validate(YAML).expect("valid");
        let dot = to_dot("t.yaml", &valid);
        for needle in [
            "port p0",
            "p0.rx[0]",
            "p0.rx[1]",
            "p0.tx[0]",
            "lcore 1",
            "lcore 2",
            "mac_swap",
            "crate::Chan<X>",
            "name = a\\\"b",
            "ring r",
            "\"fwd/p0/rx0\" -> \"fwd/lcore1/poll0\" -> \"fwd/lcore1/poll0/stage0\" -> \"fwd/lcore1/poll0/stage1\" -> \"fwd/ring/r\"",
            "\"fwd/ring/r\" -> \"fwd/lcore2/poll0\" -> \"fwd/p0/tx0\"",
            "\"fwd/p0/rx1\" -> \"fwd/lcore1/poll1\" -> \"fwd/drop\"",
        ] {
            assert!(dot.contains(needle), "missing {needle:?} in\n{dot}");
        }
        assert_eq!(dot.matches('{').count(), dot.matches('}').count());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }
}
