rosette_macros::pipeline!("yaml_listener_not_on_every_queue.yaml");

fn main() {}
