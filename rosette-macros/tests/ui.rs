//! trybuild UI tests: every validation error, from YAML (`path:line:col:` messages) and from attributes
//! (spanned messages). Regenerate with `TRYBUILD=overwrite` and review each `.stderr` by eye.

#[test]
fn ui() {
    // trybuild compiles the cases in its own directory, so point the macro at the fixtures explicitly.
    std::env::set_var("ROSETTE_PIPELINE_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ui"));
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass_*.rs");
    t.compile_fail("tests/ui/yaml_*.rs");
    t.compile_fail("tests/ui/attr_*.rs");
}
