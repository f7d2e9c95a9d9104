//! Release builds of wrend put the functions it runs in a typical life
//! (manager/wrend-hot.txt, written by scripts/wrend-hot.py) together at the
//! front of its text, through a linker script that only adds one output
//! section before `.text` (INSERT BEFORE: the linker's default layout stays).
//! The kernel maps an executable's page cache in folio-sized pieces, so a
//! hot function in a cold stretch makes the whole stretch resident; grouped,
//! wrend's idle RSS holds the code it runs rather than most of the binary.
//! Dev builds and the `wren` CLI are linked as usual. WREN_NO_HOT_TEXT=1
//! turns it off (docs/ARCHITECTURE.md, "wrend's resident text"). The
//! link map goes to OUT_DIR/wrend.map.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=wrend-hot.txt");
    println!("cargo:rerun-if-env-changed=WREN_NO_HOT_TEXT");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let off = std::env::var_os("WREN_NO_HOT_TEXT").is_some_and(|v| v != "0");
    let elf = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if !release || off || !elf {
        return;
    }
    let Ok(list) = std::fs::read_to_string("wrend-hot.txt") else {
        return;
    };
    let mut script = String::from("SECTIONS\n{\n  .text.wrend_hot :\n  {\n");
    for entry in list.lines().map(str::trim) {
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        // Only names a linker script can hold unquoted: anything else in a
        // hand-edited list is skipped, never a broken link.
        if !entry
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.$*:-".contains(c))
        {
            continue;
        }
        // `archive.a:member.o` is a C library's object (glibc has no
        // function sections), `x.o` a start file; anything else a Rust symbol, whose section
        // LLVM prefixes with `.text.unlikely.` when it is #[cold].
        match entry.split_once(".a:") {
            Some((archive, member)) => {
                writeln!(script, "    *{archive}.a:{member}(.text .text.*)")
            }
            None if entry.ends_with(".o") => writeln!(script, "    *{entry}(.text .text.*)"),
            None => writeln!(
                script,
                "    *(.text.{entry} .text.unlikely.{entry} .text.hot.{entry})"
            ),
        }
        .expect("write to a String");
    }
    script.push_str("  }\n}\nINSERT BEFORE .text;\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let path = out.join("wrend-hot.ld");
    std::fs::write(&path, script).expect("write wrend-hot.ld");
    println!("cargo:rustc-link-arg-bin=wrend=-Wl,-T,{}", path.display());
    // Where each function landed (the binary is stripped): what a trace of
    // its page faults needs to name the cold functions a release wrend ran.
    println!(
        "cargo:rustc-link-arg-bin=wrend=-Wl,-Map={}",
        out.join("wrend.map").display()
    );
}
