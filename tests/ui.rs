//! `include_arch!` failures are compile errors that point into the `.arch` file (trybuild UI tests).

#[test]
fn include_arch_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
