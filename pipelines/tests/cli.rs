//! Every binary's command line: `--help` exits 0 and explains each option; a wrong value is a clap error
//! (exit code 2, `error: …` on stderr), not a panic. None of these start the EAL.

use std::process::{Command, Output};

fn run(exe: &str, args: &[&str]) -> Output {
    Command::new(exe).args(args).env("RUST_BACKTRACE", "0").output().expect("run the binary")
}

/// (binary, options its `--help` must mention).
const BINARIES: &[(&str, &[&str])] = &[
    (env!("CARGO_BIN_EXE_forward-demo"), &["--seconds", "--memory", "--dev0", "--dev1", "EAL ARGS"]),
    (env!("CARGO_BIN_EXE_forwarder"), &["--port", "--no-huge", "--seconds", "EAL ARGS"]),
    (env!("CARGO_BIN_EXE_filter"), &["--port", "--no-huge", "--seconds", "EAL ARGS"]),
    (env!("CARGO_BIN_EXE_reflector"), &["--port", "--no-huge", "--seconds", "EAL ARGS"]),
    (env!("CARGO_BIN_EXE_bench-dispatch"), &["--seconds", "--rounds", "--memory", "--variant", "EAL ARGS"]),
    (env!("CARGO_BIN_EXE_bench-forward"), &["--seconds", "--rounds", "--memory", "--side"]),
    (
        env!("CARGO_BIN_EXE_rosette-perf"),
        &[
            "--channel",
            "--size",
            "--seconds",
            "--baseline-seconds",
            "--pings",
            "--loss",
            "--reorder",
            "--duplicate",
            "--corrupt",
            "--seed",
            "--compare-kernel",
            "--app",
            "--server",
            "--client",
            "--socket",
            "--memory",
            "EAL ARGS",
        ],
    ),
    (env!("CARGO_BIN_EXE_rosette-graph"), &["<FILE>", "--output", "--svg"]),
];

#[test]
fn help_exits_zero_and_mentions_every_option() {
    for (exe, options) in BINARIES {
        let out = run(exe, &["--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{exe} --help failed: {}", String::from_utf8_lossy(&out.stderr));
        for option in *options {
            assert!(text.contains(option), "{exe} --help does not mention {option}:\n{text}");
        }
    }
}

/// A wrong value of each binary: exit code 2 and clap's message naming the option.
#[test]
fn a_wrong_value_is_a_clap_error() {
    let cases: &[(&str, &[&str], &str)] = &[
        (env!("CARGO_BIN_EXE_forward-demo"), &["--seconds", "soon"], "--seconds"),
        (env!("CARGO_BIN_EXE_forward-demo"), &["--memory", "lots"], "--memory"),
        (env!("CARGO_BIN_EXE_reflector"), &["--", "--seconds", "soon"], "--seconds"),
        (env!("CARGO_BIN_EXE_filter"), &["--port", "wire"], "NAME=DEVICE"),
        (env!("CARGO_BIN_EXE_forwarder"), &["--", "--bogus"], "--bogus"),
        (env!("CARGO_BIN_EXE_bench-dispatch"), &["--rounds", "many"], "--rounds"),
        (env!("CARGO_BIN_EXE_bench-forward"), &["--seconds", "0"], "--seconds"),
        (env!("CARGO_BIN_EXE_rosette-perf"), &["--channel", "carrier-pigeon"], "--channel"),
        (env!("CARGO_BIN_EXE_rosette-perf"), &["--size", "8"], "--size"),
        (env!("CARGO_BIN_EXE_rosette-perf"), &["--loss", "2"], "--loss"),
        (env!("CARGO_BIN_EXE_rosette-perf"), &["--server", "--client"], "--client"),
        (env!("CARGO_BIN_EXE_rosette-graph"), &["a.yaml", "--bogus"], "--bogus"),
    ];
    for (exe, args, mentions) in cases {
        let out = run(exe, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{exe} {args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{exe} {args:?}: not a clap error:\n{stderr}");
        assert!(stderr.contains(mentions), "{exe} {args:?}: does not name {mentions}:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{exe} {args:?} panicked:\n{stderr}");
    }
}
