//! `defer!` misuse does not compile, with a clear message (trybuild; the expected compiler
//! output is in `ui/*.stderr`; regenerate with `TRYBUILD=overwrite` after a toolchain change
//! and review the diff).

#[test]
#[cfg_attr(
    feature = "sanitizer",
    ignore = "trybuild compiles its cases with the sanitizer flags and a different std"
)]
fn defer_misuse_does_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
