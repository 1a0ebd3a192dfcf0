// The connection-table example of SCHEMA.md compiles, and its endpoints have the documented type.
rosette_macros::pipeline!("mux.yaml");

use rosette::pipeline::endpoint::{EndpointError, ReliableMuxEndpoint};
use std::time::Duration;

fn main() {
    let _: fn(Duration) -> Result<ReliableMuxEndpoint, EndpointError> = server::endpoints::ingest;
    let _: fn(Duration) -> Result<ReliableMuxEndpoint, EndpointError> = client::endpoints::upload;
}
