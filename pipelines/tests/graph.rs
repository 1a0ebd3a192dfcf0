//! `rosette-graph` on every declared pipeline (`pipelines/*.yaml`): the DOT names every port, queue,
//! lcore, stage and ring, and Graphviz (when installed) renders it; on every YAML fixture of the macro's
//! UI tests it reports exactly the `path:line:col` errors the `pipeline!` macro reports.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rosette_config::ir::Source;

const EXE: &str = env!("CARGO_BIN_EXE_rosette-graph");

fn graph(dir: &Path, args: &[&str]) -> Output {
    Command::new(EXE).current_dir(dir).args(args).output().expect("run rosette-graph")
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn declarations() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifest_dir())
        .expect("read pipelines/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "expected the declared pipelines in {}", manifest_dir().display());
    files
}

/// `None` when Graphviz's `dot` runs, else why not.
fn missing_dot() -> Option<String> {
    match Command::new("dot").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("`dot -V` failed ({}): {}", o.status, String::from_utf8_lossy(&o.stderr))),
        Err(e) => Some(format!("cannot run `dot`: {e}")),
    }
}

#[test]
fn every_declaration_is_drawn_whole() {
    for file in declarations() {
        let name = file.file_name().unwrap().to_str().unwrap();
        let out = graph(&manifest_dir(), &[name]);
        let dot = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "rosette-graph {name}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(dot.starts_with("digraph "), "{name}: {dot}");
        let text = std::fs::read_to_string(&file).unwrap();
        for valid in rosette_config::parse_and_validate(&text).expect("the declared pipelines are valid") {
            let p = &valid.pipeline;
            let mut needles = vec![format!("pipeline {}", p.name.value)];
            for port in &p.ports {
                needles.push(format!("port {}", port.name.value));
                needles.push(port.device.value.clone());
                needles.extend((0..port.rx_queues.value).map(|q| format!("{}.rx[{q}]", port.name.value)));
                needles.extend((0..port.tx_queues.value).map(|q| format!("{}.tx[{q}]", port.name.value)));
            }
            for ring in &p.rings {
                needles.push(format!("ring {}", ring.name.value));
            }
            for core in &p.cores {
                needles.push(format!("lcore {}", core.lcore.value));
                for poll in &core.polls {
                    if let Source::PortRx { port, queue } = &poll.from.value {
                        needles.push(format!("{port}.rx[{queue}]"));
                    }
                    needles.extend(poll.stages.iter().map(|s| s.ty.value.clone()));
                }
            }
            for needle in needles {
                assert!(dot.contains(&needle), "{name}: the DOT does not mention {needle:?}:\n{dot}");
            }
        }
    }
}

#[test]
fn graphviz_renders_every_declaration() {
    rosette::testing::with_resource(
        rosette::testing::RESOURCE_GRAPHVIZ,
        missing_dot(),
        "apt-get install -y graphviz (scripts/setup installs it)",
        render_every_declaration,
    );
}

fn render_every_declaration() {
    let tmp = std::env::temp_dir().join(format!("rosette-graph-test-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for file in declarations() {
        let name = file.file_name().unwrap().to_str().unwrap();
        let (dot_file, svg_file) = (tmp.join(format!("{name}.dot")), tmp.join(format!("{name}.svg")));
        let out =
            graph(&manifest_dir(), &[name, "-o", dot_file.to_str().unwrap(), "--svg", svg_file.to_str().unwrap()]);
        assert!(out.status.success(), "rosette-graph {name} --svg: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty(), "-o writes the DOT to the file, not stdout");
        let svg = std::fs::read_to_string(&svg_file).expect("the SVG was written");
        assert!(svg.contains("<svg"), "{name}: not an SVG");
        let check = Command::new("dot").arg("-Tsvg").arg(&dot_file).output().expect("run dot");
        assert!(check.status.success(), "dot -Tsvg {name}.dot: {}", String::from_utf8_lossy(&check.stderr));
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Every YAML fixture of the macro's UI tests: where the macro reports `error: path:line:col: …` lines
/// (the validator, run-time param checks included) or const-evaluation errors of a built-in stage's
/// params, rosette-graph prints exactly those messages and exits 1; where the errors come only from
/// the params of user stages (they need the stage types, which only rustc sees), it draws the graph.
#[test]
fn errors_are_the_macros_errors() {
    let ui = manifest_dir().join("../rosette-macros/tests/ui");
    let mut compared = 0;
    for entry in std::fs::read_dir(&ui).expect("read the UI tests") {
        let case = entry.unwrap().path();
        let stem = case.file_stem().unwrap().to_str().unwrap().to_owned();
        if !stem.starts_with("yaml_") || case.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&case).unwrap();
        let Some(yaml) = source.split("pipeline!(\"").nth(1).and_then(|rest| rest.split('"').next()) else {
            continue;
        };
        let stderr = std::fs::read_to_string(case.with_extension("stderr")).unwrap();
        let mut expected: Vec<&str> = stderr.lines().filter_map(|l| l.strip_prefix("error: ")).collect();
        // Const-evaluation errors of built-in stages (`stage `reliable``, not `stage `crate::Filter``).
        expected.extend(stderr.lines().filter_map(|l| l.strip_prefix("error[E0080]: evaluation panicked: ")).filter(
            |m| m.split("stage `").nth(1).is_some_and(|rest| !rest.split('`').next().unwrap_or("").contains("::")),
        ));
        let out = graph(&ui, &[yaml]);
        // trybuild writes the macro crate's directory as `$DIR`.
        let macros_dir = ui.join("../..").canonicalize().unwrap();
        let got = String::from_utf8_lossy(&out.stderr).replace(macros_dir.to_str().unwrap(), "$DIR");
        assert!(!got.contains("panicked"), "{stem}: rosette-graph panicked:\n{got}");
        if expected.is_empty() {
            assert!(out.status.success(), "{stem}: the macro's parser accepts {yaml}, rosette-graph does not:\n{got}");
        } else {
            assert_eq!(out.status.code(), Some(1), "{stem}: {got}");
            // rustc orders const-evaluation errors its own way: compare them as sets of lines.
            let (mut got_lines, mut expected) = (got.lines().collect::<Vec<_>>(), expected);
            got_lines.sort_unstable();
            expected.sort_unstable();
            assert_eq!(got_lines, expected, "{stem}: not the macro's messages");
            compared += 1;
        }
    }
    assert!(compared >= 20, "only {compared} UI fixtures compared");
}

/// A file whose params the runtime would refuse (`window: 0`) is refused here, at the param, with the
/// macro's message and exit code 1: rosette-graph draws only what compiles and launches.
#[test]
fn params_the_runtime_refuses_fail_with_the_macros_message() {
    let ui = manifest_dir().join("../rosette-macros/tests/ui");
    let out = graph(&ui, &["yaml_param_window_too_small.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing is drawn");
    assert_eq!(stderr.trim_end(), "yaml_param_window_too_small.yaml:22:23: param `window` must be at least 2");
    let typo = graph(&ui, &["yaml_param_typo.yaml"]);
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert_eq!(typo.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(
            "yaml_param_typo.yaml:22:22: stage `reliable`: unknown param `windw`; did you mean `window`? expected one of:"
        ),
        "{stderr}"
    );
}

#[test]
fn a_missing_file_is_an_error_not_a_panic() {
    let out = graph(&manifest_dir(), &["no-such-file.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("no-such-file.yaml: cannot read "), "{stderr}");
}

#[test]
fn svg_without_graphviz_says_what_to_install() {
    let svg = std::env::temp_dir().join(format!("rosette-graph-nodot-{}.svg", std::process::id()));
    let out = Command::new(EXE)
        .current_dir(manifest_dir())
        .args(["reflector.yaml", "--svg", svg.to_str().unwrap()])
        .env("PATH", "/nonexistent")
        .output()
        .expect("run rosette-graph");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("apt-get install graphviz"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("digraph "), "the DOT is still written");
}
