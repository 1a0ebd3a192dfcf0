//! Two rosette processes whose workers spin on the same CPU: the second warns once at EAL start,
//! naming the CPU and the first process (pid and program name); the first learns of the second too
//! (its lcore's shared flag, which makes the loop yield when idle); a clean stop removes the claims;
//! a stale claim (a dead process's) neither warns nor stays.
//!
//! Each side is this test binary re-run as a scenario (`rosette::testing::child_command`), with its own
//! claims directory (`ROSETTE_CPU_CLAIMS_DIR`) so that other rosette processes on the machine play no
//! part.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rosette::substrate::cpus::{Claim, CLAIMS_DIR_ENV};
use rosette::substrate::{cpu_shared, Eal};

/// The file the parent creates to let the first process stop.
const GO: &str = "go";

fn claims_dir() -> PathBuf {
    PathBuf::from(std::env::var_os(CLAIMS_DIR_ENV).expect("the parent sets the claims directory"))
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            eprintln!("gave up waiting for {what} after {limit:?}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Ends a scenario: every mbuf back (no pool here, so this checks the accounting itself), then EAL
/// goes (and with it this process's claims).
fn finish(eal: Eal) {
    assert_eq!(eal.mbufs_outstanding(), 0, "every mbuf back in its pool");
    drop(eal);
}

/// The first process: worker lcore 1; reports whether it saw its CPU become shared once the second
/// process started, then waits for the parent's go.
#[test]
#[ignore = "a scenario: run in its own process by a_second_process_on_the_same_cpu_warns_naming_the_first"]
fn scenario_first() {
    assert!(common::is_scenario("scenario_first"), "run by a_second_process_on_the_same_cpu_warns_naming_the_first");
    let eal = common::test_eal().start().expect("start EAL");
    assert!(!cpu_shared(1), "nobody else claimed CPU 1 in this claims directory");
    println!("ready");
    let dir = claims_dir();
    // Once the second process runs (its claim is there), the rescan marks our lcore shared.
    let me = format!(".{}", std::process::id());
    let seen = wait_for("the second process's claim", Duration::from_secs(60), || {
        claim_files(&dir).iter().any(|name| !name.ends_with(&me))
    }) && wait_for("the shared flag", Duration::from_secs(2), || cpu_shared(1));
    println!("shared_seen={seen}");
    wait_for("the parent's go", Duration::from_secs(60), || dir.join(GO).exists());
    finish(eal);
}

/// The second process: the same lcores as the first; its EAL start gives the warning (on stderr:
/// no logger here). It keeps running a moment so the first process's rescan sees it.
#[test]
#[ignore = "a scenario: run in its own process by a_second_process_on_the_same_cpu_warns_naming_the_first"]
fn scenario_second() {
    assert!(common::is_scenario("scenario_second"), "run by a_second_process_on_the_same_cpu_warns_naming_the_first");
    let eal = common::test_eal().start().expect("start EAL");
    assert!(cpu_shared(1), "the second process knows at start that CPU 1 is shared");
    std::thread::sleep(Duration::from_millis(800));
    finish(eal);
}

/// The claim files in `dir` (`cpu<N>.<pid>`).
fn claim_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("cpu")).collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_second_process_on_the_same_cpu_warns_naming_the_first() {
    let dir = std::env::temp_dir().join(format!("rosette-shared-cpu-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A claim a killed process left on CPU 1: stale, so it must neither warn nor stay.
    let stale = Claim { cpu: 1, pid: u32::MAX - 3, start_time: 5, lcore: 1, name: "long-gone".to_owned() };
    std::fs::write(dir.join(stale.file_name()), stale.to_text()).unwrap();

    let mut first = common::child_command("scenario_first", true)
        .env(CLAIMS_DIR_ENV, &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the first process");
    let first_pid = first.id();
    let mut first_out = BufReader::new(first.stdout.take().expect("piped"));
    let mut line = String::new();
    let ready = loop {
        line.clear();
        if first_out.read_line(&mut line).unwrap_or(0) == 0 {
            break false;
        }
        if line.trim_end().ends_with("ready") {
            break true;
        }
    };
    let stale_removed = !dir.join(stale.file_name()).exists();
    let claimed = claim_files(&dir);

    let second = common::child_command("scenario_second", true)
        .env(CLAIMS_DIR_ENV, &dir)
        .output()
        .expect("run the second process");
    let second_err = String::from_utf8_lossy(&second.stderr).into_owned();
    std::fs::write(dir.join(GO), b"").unwrap();
    let first_rest = {
        let mut rest = String::new();
        for l in first_out.lines().map_while(Result::ok) {
            rest.push_str(&l);
            rest.push('\n');
        }
        rest
    };
    let first_status = first.wait().expect("wait for the first process");
    let mut first_err = String::new();
    let _ = std::io::Read::read_to_string(&mut first.stderr.take().expect("piped"), &mut first_err);
    let left = claim_files(&dir);
    let _ = std::fs::remove_dir_all(&dir);

    assert!(ready, "the first process never got ready:\n{first_err}");
    assert!(first_status.success(), "the first process failed:\n{first_rest}\n{first_err}");
    assert!(second.status.success(), "the second process failed:\n{second_err}");
    assert!(stale_removed, "a dead process's claim was ignored and removed");
    assert_eq!(claimed, vec![format!("cpu1.{first_pid}")], "the first process claims the CPU of its worker lcore 1");
    assert!(!first_err.contains("is also spun on"), "the first process had nobody to warn about:\n{first_err}");
    let exe = std::env::current_exe().unwrap();
    let program = exe.file_name().unwrap().to_string_lossy();
    let warnings: Vec<&str> = second_err.lines().filter(|l| l.contains("is also spun on")).collect();
    assert_eq!(warnings.len(), 1, "exactly one warning:\n{second_err}");
    let expected =
        format!("CPU 1 (this process's worker lcore 1) is also spun on by pid {first_pid} ({program}, lcore 1)");
    assert!(warnings[0].contains(&expected), "expected `{expected}` in:\n{second_err}");
    assert!(warnings[0].starts_with("rosette: warning: "), "on stderr without a logger:\n{second_err}");
    assert!(!second_err.contains("long-gone"), "the stale claim is not named:\n{second_err}");
    assert!(first_rest.contains("shared_seen=true"), "the first process learned its CPU is shared:\n{first_rest}");
    assert!(left.is_empty(), "a clean stop removes its claims; left: {left:?}");
}
