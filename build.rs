//! Build script of the `rosette` substrate: finds DPDK 22.11 through pkg-config, generates Rust bindings
//! with bindgen, and compiles C wrappers for DPDK's `static inline` fast-path functions (and the small
//! shim in `rosette/substrate/shim.c`) with exactly the compiler flags DPDK's pkg-config file asks for.
//!
//! Why every flag: `pkg-config --cflags libdpdk` carries `-include rte_config.h` and `-march=corei7`.
//! With only the `-I` flags, the wrappers fail to compile (`inlining failed in call to 'always_inline'
//! '_mm_alignr_epi8'`), so the same full flag list goes to bindgen and to the C compiler.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The oldest DPDK release the substrate is written against.
const MIN_DPDK_VERSION: &str = "22.11";

/// Headers whose declarations rosette uses. Everything else DPDK pulls in stays out of the bindings,
/// which keeps them small and avoids the structs bindgen cannot lay out.
const ALLOWED_HEADERS: &str = concat!(
    r".*/rte_(eal|ethdev|ethdev_core|mbuf|mbuf_core|mbuf_ptype|pktmbuf|mempool|ring|ring_core|ring_elem",
    r"|lcore|launch|cycles|memory|malloc|version|telemetry|dev|bus_vdev|errno|per_lcore|common|config",
    r"|build_config|branch_prediction|log|debug|byteorder|ether|os|pause|alarm|interrupts)\.h"
);

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=rosette/substrate/wrapper.h");
    println!("cargo:rerun-if-changed=rosette/substrate/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");
    println!("cargo:rerun-if-env-changed=ROSETTE_DPDK_CFLAGS");

    let dpdk = probe_dpdk();
    let cflags = dpdk_cflags();
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let header = manifest_dir.join("rosette/substrate/wrapper.h");

    generate_bindings(&header, &cflags, &out_dir);
    compile_wrappers(&manifest_dir, &header, &cflags, &out_dir, &dpdk);
    println!("cargo:version={}", dpdk.version);
    // The Rust copies of the inline rx/tx burst functions (substrate/fastpath.rs) mirror DPDK 22.11.
    println!("cargo::rustc-check-cfg=cfg(rosette_inline_fastpath)");
    if dpdk.version.starts_with("22.11") {
        println!("cargo:rustc-cfg=rosette_inline_fastpath");
    }
}

/// Finds `libdpdk` with pkg-config, emitting its link flags. Stops the build with one message that names
/// the Debian packages to install when it is missing or too old.
fn probe_dpdk() -> pkg_config::Library {
    match pkg_config::Config::new().atleast_version(MIN_DPDK_VERSION).probe("libdpdk") {
        Ok(lib) => lib,
        Err(err) => {
            let reason = err.to_string();
            let first_line = reason.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no details");
            eprintln!(
                "\nerror: rosette needs DPDK >= {MIN_DPDK_VERSION} (pkg-config package `libdpdk`), which was not found.\n\
                 On Debian 12, install it with:\n\n    apt-get install -y dpdk dpdk-dev libdpdk-dev pkg-config libclang-dev clang\n\n\
                 or run `scripts/setup`, which does it for you. (pkg-config said: {first_line})\n"
            );
            std::process::exit(1);
        }
    }
}

/// All of `pkg-config --cflags libdpdk`, split into arguments. `ROSETTE_DPDK_CFLAGS` overrides it for
/// unusual installs.
fn dpdk_cflags() -> Vec<String> {
    if let Ok(flags) = env::var("ROSETTE_DPDK_CFLAGS") {
        return flags.split_whitespace().map(str::to_owned).collect();
    }
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_owned());
    let output = Command::new(&pkg_config)
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("running `{pkg_config} --cflags libdpdk` failed: {e}"));
    assert!(
        output.status.success(),
        "`{pkg_config} --cflags libdpdk` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("pkg-config prints UTF-8").split_whitespace().map(str::to_owned).collect()
}

fn generate_bindings(header: &Path, cflags: &[String], out_dir: &Path) {
    let bindings = bindgen::Builder::default()
        .header(header.to_str().expect("UTF-8 path"))
        .clang_args(cflags)
        .allowlist_file(ALLOWED_HEADERS)
        .allowlist_function("rosette_.*")
        // Packet capture (`dpdk-dumpcap`): only the two calls of the primary side; librte_pdump is among
        // the libraries `pkg-config --libs libdpdk` links.
        .allowlist_function("rte_pdump_(init|uninit)")
        // `per_lcore_*` variables are thread-locals in C; bindgen would emit them as plain statics, which
        // link and then crash. Accessors in shim.c read them instead.
        .blocklist_item("per_lcore_.*")
        .blocklist_item("rte_errno")
        // Two DPDK types bindgen cannot handle as written.
        .no_debug("rte_flow_item_gtp_psc")
        .opaque_type("rte_arp_ipv4|rte_arp_hdr")
        .wrap_static_fns(true)
        .wrap_static_fns_path(out_dir.join("static_wrappers"))
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| panic!("bindgen could not generate DPDK bindings: {e}"));
    bindings.write_to_file(out_dir.join("dpdk_bindings.rs")).expect("write DPDK bindings");
}

fn compile_wrappers(manifest_dir: &Path, header: &Path, cflags: &[String], out_dir: &Path, dpdk: &pkg_config::Library) {
    let mut build = cc::Build::new();
    build
        .file(out_dir.join("static_wrappers.c"))
        .file(manifest_dir.join("rosette/substrate/shim.c"))
        // bindgen's wrapper file includes the header by the path it was given; make that resolvable.
        .include(header.parent().expect("header has a parent"))
        .opt_level(3)
        .warnings(false);
    for flag in cflags {
        build.flag(flag);
    }
    for path in &dpdk.include_paths {
        build.include(path);
    }
    build.compile("rosette_dpdk_wrappers");
}
