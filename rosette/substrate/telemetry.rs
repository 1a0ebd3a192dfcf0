//! Counters published through DPDK telemetry, so `dpdk-telemetry.py` (and any telemetry client) can
//! read them from a running rosette process.
//!
//! Two commands are registered the first time a source is added:
//! - `/rosette/sources` — the names of every registered source;
//! - `/rosette/stats,<source>` — that source's counters, as a dictionary of unsigned integers;
//!   `/rosette/stats,<source>/<n>` — item `n` of an indexed source (a channel's connection `n`).
//!
//! Connect with `dpdk-telemetry.py -f <file-prefix>` (rosette's default prefix is `rosette-<pid>`).

use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::{Mutex, Once};

use super::error::{Error, Result};
use super::ffi;

/// Reads a source's counters when a telemetry client asks. Runs on DPDK's telemetry thread.
pub type CounterReader = Box<dyn Fn() -> Vec<(String, u64)> + Send + Sync>;

/// Reads the counters of item `n` of a source (`None`: no such item). Runs on the telemetry thread.
pub type IndexedReader = Box<dyn Fn(u32) -> Option<Vec<(String, u64)>> + Send + Sync>;

struct Source {
    name: String,
    read: CounterReader,
    read_one: Option<IndexedReader>,
}

static SOURCES: Mutex<Vec<Source>> = Mutex::new(Vec::new());
static REGISTER: Once = Once::new();

/// Telemetry (22.11) accepts only letters, digits, `_` and `/` in dictionary keys.
fn telemetry_key(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '/') { c } else { '_' }).collect()
}

/// Adds (or replaces) a counter source named `name`; characters telemetry does not accept in names
/// (anything but letters, digits, `_` and `/`) become `_`.
pub fn register_source(name: &str, read: CounterReader) -> Result<()> {
    register(name, read, None)
}

/// Adds (or replaces) a source whose items can be read one by one as `<name>/<n>` as well.
pub fn register_indexed_source(name: &str, read: CounterReader, read_one: IndexedReader) -> Result<()> {
    register(name, read, Some(read_one))
}

fn register(name: &str, read: CounterReader, read_one: Option<IndexedReader>) -> Result<()> {
    let mut failure = None;
    REGISTER.call_once(|| failure = register_commands().err());
    if let Some(e) = failure {
        return Err(e);
    }
    let name = telemetry_key(name);
    let mut sources = SOURCES.lock().unwrap_or_else(|e| e.into_inner());
    sources.retain(|s| s.name != name);
    sources.push(Source { name, read, read_one });
    Ok(())
}

/// Removes a source; its counters are no longer served.
pub fn unregister_source(name: &str) {
    let name = telemetry_key(name);
    SOURCES.lock().unwrap_or_else(|e| e.into_inner()).retain(|s| s.name != name);
}

/// The counters of a source, as telemetry would serve them (for tests and local display).
pub fn read_source(name: &str) -> Option<Vec<(String, u64)>> {
    let sources = SOURCES.lock().unwrap_or_else(|e| e.into_inner());
    let key = telemetry_key(name);
    if let Some(s) = sources.iter().find(|s| s.name == key) {
        return Some((s.read)());
    }
    let (base, item) = key.rsplit_once('/')?;
    let item: u32 = item.parse().ok()?;
    let read_one = sources.iter().find(|s| s.name == base)?.read_one.as_ref()?;
    read_one(item)
}

fn register_commands() -> Result<()> {
    let commands: [(&CStr, ffi::telemetry_cb, &CStr); 2] = [
        (c"/rosette/sources", Some(list_sources), c"Lists rosette counter sources. No parameters."),
        (c"/rosette/stats", Some(source_stats), c"Counters of one rosette source. Parameter: source name."),
    ];
    for (cmd, cb, help) in commands {
        // SAFETY: static C strings and a callback with the signature telemetry expects; telemetry keeps
        // the pointers, which are 'static.
        let rc = unsafe { ffi::rte_telemetry_register_cmd(cmd.as_ptr(), cb, help.as_ptr()) };
        if rc != 0 {
            return Err(Error::dpdk(format!("register telemetry command {}", cmd.to_string_lossy()), rc));
        }
    }
    Ok(())
}

unsafe extern "C" fn list_sources(_cmd: *const c_char, _params: *const c_char, info: *mut ffi::rte_tel_data) -> c_int {
    let sources = SOURCES.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: info is the valid, empty container telemetry passes to every callback.
    unsafe { ffi::rte_tel_data_start_dict(info) };
    for (index, source) in sources.iter().enumerate() {
        if let Ok(key) = CString::new(source.name.as_str()) {
            // SAFETY: info was started as a dictionary; key is a valid C string that telemetry copies.
            unsafe { ffi::rte_tel_data_add_dict_u64(info, key.as_ptr(), index as u64) };
        }
    }
    0
}

unsafe extern "C" fn source_stats(_cmd: *const c_char, params: *const c_char, info: *mut ffi::rte_tel_data) -> c_int {
    if params.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: telemetry passes the command's parameter as a NUL-terminated string.
    let wanted = unsafe { CStr::from_ptr(params) }.to_string_lossy().into_owned();
    let Some(counters) = read_source(wanted.trim()) else {
        return -libc::EINVAL;
    };
    // SAFETY: info is the valid, empty container telemetry passes to every callback.
    unsafe { ffi::rte_tel_data_start_dict(info) };
    for (name, value) in counters {
        if let Ok(key) = CString::new(telemetry_key(&name)) {
            // SAFETY: info is a dictionary; key is a valid C string that telemetry copies.
            unsafe { ffi::rte_tel_data_add_dict_u64(info, key.as_ptr(), value) };
        }
    }
    0
}
