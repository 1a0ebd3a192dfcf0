// The complete example of SCHEMA.md compiles.
rosette_macros::pipeline!("forwarder.yaml");

fn main() {
    assert_eq!(forwarder::NAME, "forwarder");
}
