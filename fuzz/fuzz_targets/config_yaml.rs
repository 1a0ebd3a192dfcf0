//! The YAML front end and the validator of pipeline declarations (`rosette-config`), exactly as the
//! `pipeline!` macro and `rosette-graph` run them. Input: any bytes, taken (lossily) as the text of a
//! declaration file. Parsing and validation never panic: the result is either at least one valid
//! pipeline, whose stage types parse as Rust types (code generation relies on it) and which validates
//! again unchanged, or at least one diagnostic with a non-empty message that renders with the file's
//! name in front.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rosette_config::validate::validate;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match rosette_config::parse_and_validate(&text) {
        Ok(pipelines) => {
            assert!(!pipelines.is_empty(), "a valid file declares at least one pipeline");
            for valid in pipelines {
                assert_eq!(valid.ring_producers.len(), valid.pipeline.rings.len());
                for stage in valid.pipeline.cores.iter().flat_map(|c| &c.polls).flat_map(|p| &p.stages) {
                    if let Err(e) = stage.type_path() {
                        panic!("stage type `{}` of a valid pipeline does not parse: {e}", stage.ty.value);
                    }
                }
                let again = validate(valid.pipeline.clone()).expect("a valid pipeline validates again");
                assert_eq!(again, valid);
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "an invalid file reports at least one error");
            for error in &errors {
                assert!(!error.message.is_empty());
                assert!(error.render("fuzz.yaml").starts_with("fuzz.yaml"));
            }
        }
    }
});
