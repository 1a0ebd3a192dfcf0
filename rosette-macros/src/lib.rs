//! Procedural macros of rosette: the pipeline compiler.
mod codegen;
