//! Declared rosette pipelines.
