//! Device trees: a bounds-checked reader of the flattened format, and the
//! tree the hyp hands its EL1 kernel.

pub mod el1_tree;
pub mod reader;
