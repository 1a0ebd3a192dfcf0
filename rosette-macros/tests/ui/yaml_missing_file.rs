rosette_macros::pipeline!("no_such_file.yaml");

fn main() {}
