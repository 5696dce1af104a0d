// trybuild compiles this file as a crate of its own under target/tests/trybuild/archc, which becomes
// CARGO_MANIFEST_DIR; the path climbs back to the repository's tests/ui.
archc_runtime::include_arch!("../../../../tests/ui/syntax_error.arch");

fn main() {}
