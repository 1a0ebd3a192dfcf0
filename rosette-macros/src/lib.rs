//! Procedural macros of rosette: the pipeline compiler.
// The front ends (YAML, attributes) that feed codegen land next.
#[allow(dead_code)]
mod codegen;
