//! Build script: only for musl targets, where the release `wren-oci` and
//! shim are built (docs/ARCHITECTURE.md, "wren-oci and the shim on musl"). Debian's libseccomp.a
//! is compiled against glibc with `_FORTIFY_SOURCE`, so it calls glibc's
//! `__fprintf_chk`, which musl lacks; `src/sys/fprintf_chk.c` supplies it.
//! Only libseccomp's filter text export (unused by wren) calls it.

fn main() {
    println!("cargo:rerun-if-changed=src/sys/fprintf_chk.c");
    if std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("musl") {
        cc::Build::new()
            .file("src/sys/fprintf_chk.c")
            // libseccomp.a comes later on the link line: keep the object
            // even though nothing before it refers to the symbol.
            .link_lib_modifier("+whole-archive")
            .compile("wren_fprintf_chk");
    }
}
