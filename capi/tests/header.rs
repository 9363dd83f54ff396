//! The committed header `capi/include/brlock.h` is what cbindgen generates from `capi/src`
//! now (the drift check). `BRLOCK_BLESS=1 cargo test -p brlock-capi --test header` rewrites
//! it after a change of the API.

use std::path::Path;

#[test]
fn committed_header_equals_a_fresh_generation() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("capi/cbindgen.toml parses");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("the header is UTF-8");
    let committed_path = crate_dir.join("include").join("brlock.h");
    if std::env::var_os("BRLOCK_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&committed_path, &fresh).expect("write capi/include/brlock.h");
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    if committed != fresh {
        let first = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(fresh.lines().count()));
        panic!(
            "capi/include/brlock.h differs from what cbindgen generates from capi/src (first \
             at line {}: committed {:?}, fresh {:?}); regenerate it with \
             `BRLOCK_BLESS=1 cargo test -p brlock-capi --test header` and commit it",
            first + 1,
            committed.lines().nth(first).unwrap_or("<end>"),
            fresh.lines().nth(first).unwrap_or("<end>"),
        );
    }
}
