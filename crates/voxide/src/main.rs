//! The voxide binary.
fn main() {}
