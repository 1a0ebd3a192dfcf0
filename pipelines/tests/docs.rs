//! Docs are code: every ` ```rust ` and ` ```yaml ` block of `README.md` and `rosette-macros/SCHEMA.md`
//! is compiled here (with trybuild), and a block that is a complete program (it has `fn main`) runs.
//!
//! How each block becomes a program:
//! - a Rust block is the program's items, verbatim; `fn main() {}` is added when it has none. A block
//!   that names `crate::Filter`, or loads YAML that does, gets SCHEMA.md's "A user stage" block (the
//!   one defining `Filter`) beside it. A block calling `rosette_macros::pipeline!("P")` loads, instead of `P`, the YAML block of
//!   the same document whose pipeline has the name of `P`'s file stem (the complete example), written
//!   out by this test (the literal becomes that file's absolute path).
//! - a YAML block that is a whole document (`name: ...`) and no Rust block loads is declared with
//!   `pipeline!`; a `stages:` fragment is declared inside a minimal one-port pipeline.
//! - README.md's `Stage` trait block is also compared, signature by signature, with the trait in
//!   `rosette/pipeline/mod.rs`, so the README cannot drift from the real contract.
//!
//! A block that must not compile (output, shell, an abridged sketch) is fenced as `text`, `sh`, ...

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One fenced block of a Markdown file.
#[derive(Debug, Clone)]
struct Block {
    /// `readme` or `schema`.
    doc: &'static str,
    /// 1-based line of the opening fence.
    line: usize,
    lang: String,
    text: String,
}

impl Block {
    fn at(&self) -> String {
        format!("{}:{}", self.doc, self.line)
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

fn blocks(doc: &'static str, text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block { doc, line: i + 1, lang: lang.trim().to_owned(), text: String::new() })
            }
            (Some(_), Some("")) => out.push(open.take().expect("open block")),
            (Some(b), _) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "{doc}: a fence is never closed: {open:?}");
    out
}

fn docs() -> Vec<Block> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let schema = std::fs::read_to_string(root().join("rosette-macros/SCHEMA.md")).expect("SCHEMA.md");
    let mut all = blocks("readme", &readme);
    all.extend(blocks("schema", &schema));
    all
}

/// The `name:` of a whole YAML document, if the block is one.
fn yaml_name(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("name: ")).map(str::trim)
}

/// The literal of a `pipeline!("...")` call.
fn pipeline_path(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once("pipeline!(\"")?;
    rest.split_once('"').map(|(p, _)| p)
}

/// The signatures of `pub trait Stage` in `text`: its header line, then each method's signature (up to
/// its `;` or `{`, parameters' leading `_` removed) with whether it has a default body.
fn stage_trait(text: &str) -> Vec<String> {
    let start = text.find("pub trait Stage: ").expect("a `pub trait Stage` definition");
    let body = &text[start..];
    let end = body.find("\n}\n").expect("the trait's closing brace at column 0");
    let mut sigs = vec![body.lines().next().unwrap().trim().to_owned()];
    for line in body[..end].lines().map(str::trim).filter(|l| l.starts_with("fn ")) {
        let (sig, default) = match line.find(['{', ';']) {
            Some(i) => (&line[..i], line[i..].starts_with('{')),
            None => panic!("a method signature on more than one line: {line}"),
        };
        let sig = sig.trim().replace("(_", "(").replace(" _", " ");
        sigs.push(format!("{sig} {}", if default { "{ default }" } else { ";" }));
    }
    sigs
}

#[test]
fn readme_stage_trait_is_the_real_one() {
    let all = docs();
    let readme: Vec<&Block> =
        all.iter().filter(|b| b.doc == "readme" && b.lang == "rust" && b.text.contains("trait Stage")).collect();
    assert_eq!(readme.len(), 1, "README.md shows the Stage trait once: {readme:?}");
    let real = std::fs::read_to_string(root().join("rosette/pipeline/mod.rs")).expect("rosette/pipeline/mod.rs");
    assert_eq!(
        stage_trait(&readme[0].text),
        stage_trait(&real),
        "README.md's Stage trait ({}) differs from rosette/pipeline/mod.rs",
        readme[0].at()
    );
}

#[test]
fn the_drift_check_sees_a_missing_or_changed_method() {
    let real = "pub trait Stage: Send {\n    fn a(&mut self, _x: u8) -> u32;\n    fn b(&self) {}\n}\n";
    let sigs = stage_trait(real);
    assert_eq!(sigs, ["pub trait Stage: Send {", "fn a(&mut self, x: u8) -> u32 ;", "fn b(&self) { default }"]);
    assert_ne!(stage_trait("pub trait Stage: Send {\n    fn a(&mut self, x: u8) -> u32;\n}\n"), sigs);
    assert_ne!(stage_trait("pub trait Stage: Send {\n    fn a(&mut self, x: u8) -> u64;\n    fn b(&self);\n}\n"), sigs);
}

#[test]
fn every_rust_and_yaml_block_compiles_and_complete_programs_run() {
    let all = docs();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("doc-blocks");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let filter = all
        .iter()
        .find(|b| b.lang == "rust" && b.text.contains("pub struct Filter"))
        .expect("SCHEMA.md's user stage block defines `Filter`");
    // YAML files the Rust blocks load, by the path they name; and which YAML blocks those are.
    let mut files: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut loaded = Vec::new();
    let mut programs = Vec::new();
    for b in all.iter().filter(|b| b.lang == "rust") {
        let mut program = String::new();
        let mut needs_filter = b.text.contains("crate::Filter");
        if let Some(path) = pipeline_path(&b.text) {
            let stem = Path::new(path).file_stem().and_then(|s| s.to_str()).unwrap();
            let yaml = all
                .iter()
                .find(|y| y.doc == b.doc && y.lang == "yaml" && yaml_name(&y.text) == Some(stem))
                .unwrap_or_else(|| panic!("{}: loads {path}, but no YAML block of {} is named {stem}", b.at(), b.doc));
            if let Some((other, text)) = files.insert(path.to_owned(), (yaml.at(), yaml.text.clone())) {
                assert_eq!(text, yaml.text, "{path} is both {other} and {}", yaml.at());
            }
            loaded.push(yaml.at());
            needs_filter |= yaml.text.contains("crate::Filter");
        }
        if needs_filter && b.at() != filter.at() {
            program.push_str(&format!("// {} (the user stage)\n{}\n", filter.at(), filter.text));
        }
        // The program loads the YAML block from where this test writes it (an absolute path).
        let text = match pipeline_path(&b.text) {
            Some(path) => b.text.replacen(path, &dir.join(path).display().to_string(), 1),
            None => b.text.clone(),
        };
        if b.text.contains("pub trait Stage") {
            program.push_str(&format!(
                "mod doc {{\n#![allow(dead_code)]\nuse rosette::pipeline::{{Context, StageReport, Verdict}};\nuse \
                 rosette::substrate::{{Batch, Mbuf}};\n{}}}\n",
                b.text
            ));
        } else {
            program.push_str(&text);
        }
        if !b.text.contains("fn main(") {
            program.push_str("\nfn main() {}\n");
        }
        programs.push((b.at(), program));
    }
    for y in all.iter().filter(|b| b.lang == "yaml" && !loaded.contains(&b.at())) {
        let text = if yaml_name(&y.text).is_some() {
            y.text.clone()
        } else {
            assert!(
                y.text.lines().find(|l| !l.starts_with('#')).is_some_and(|l| l.starts_with("stages:")),
                "{}: a YAML block is a whole pipeline (with `name:`) or a `stages:` fragment:\n{}",
                y.at(),
                y.text
            );
            let stages: String = y.text.lines().map(|l| format!("        {l}\n")).collect();
            format!(
                "name: fragment\neal:\n  lcores: \"0-1\"\nports:\n  wire:\n    device: net_null0\ncores:\n  - lcore: \
                 1\n    polls:\n      - from: wire.rx[0]\n{stages}        to: wire.tx[0]\n"
            )
        };
        let path = format!("{}_L{}.yaml", y.doc, y.line);
        files.insert(path.clone(), (y.at(), text.clone()));
        let mut program = String::new();
        if text.contains("crate::Filter") {
            program.push_str(&format!("// {} (the user stage)\n{}\n", filter.at(), filter.text));
        }
        program.push_str(&format!("rosette_macros::pipeline!({:?});\n\nfn main() {{}}\n", dir.join(&path)));
        programs.push((y.at(), program));
    }
    assert!(programs.len() >= 8, "the docs' code blocks went missing? {:?}", programs.iter().map(|p| &p.0));
    for (path, (_, text)) in &files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let t = trybuild::TestCases::new();
    for (at, program) in &programs {
        let file = dir.join(format!("{}.rs", at.replace(':', "_L")));
        std::fs::write(&file, format!("// {at}, generated by pipelines/tests/docs.rs\n{program}")).unwrap();
        t.pass(file);
    }
}
