// Swapping `reliable` for `streaming` changes the endpoint type: the mismatch is a compile error naming both.
rosette_macros::pipeline!("params.yaml");

// The user stage every typed-param case declares (one copy, shared).
include!("params_stage.rs.in");

fn main() {
    let _endpoint: rosette::pipeline::endpoint::StreamEndpoint =
        chan::endpoints::ingest(std::time::Duration::from_secs(1)).unwrap();
}
