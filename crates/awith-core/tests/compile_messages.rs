//! What the compiler tells a user who gets a scope wrong: each case in
//! `tests/ui/` must fail to compile with the message beside it (`.stderr`),
//! and the message must point at the fix. Messages are rustc's and may change
//! with its version: `TRYBUILD=overwrite cargo test -p awith-core --test
//! compile_messages` renews them (read the diff before committing it).

#[test]
fn compile_messages() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
