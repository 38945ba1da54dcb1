//! `include/rrra.h` must be exactly what cbindgen generates from the sources, with the version
//! macros taken from Cargo.toml (the one place the version is kept).
//! Regenerate with `RRRA_BLESS=1 cargo test --test header`.

use std::path::Path;

fn generate() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut config = cbindgen::Config::from_file(Path::new(root).join("cbindgen.toml")).expect("cbindgen.toml");
    config.after_includes = Some(format!(
        "\n#define RRRA_VERSION_MAJOR {}\n#define RRRA_VERSION_MINOR {}\n#define RRRA_VERSION_PATCH {}\n#define RRRA_VERSION_STRING \"{}\"",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION"),
    ));
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header")
        .write(&mut out);
    String::from_utf8(out).expect("header is UTF-8")
}

#[test]
fn committed_header_matches_the_sources() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/rrra.h");
    let generated = generate();
    if std::env::var_os("RRRA_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/rrra.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/rrra.h is stale: regenerate it with `RRRA_BLESS=1 cargo test --test header` and commit it"
    );
}
