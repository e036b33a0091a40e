use std::env;

#[rustversion::nightly]
const NIGHTLY: bool = true;

#[rustversion::not(nightly)]
const NIGHTLY: bool = false;

fn main() {
    let target_arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap();
    let external_assembly_required = target_arch == "powerpc64";
    println!("target: {target_arch}, ext: {external_assembly_required}");

    println!("cargo:rustc-check-cfg=cfg(nightly)");

    // greenlet-generator: AddressSanitizer fiber annotations (src/asan.rs)
    // when the target is built with `-Zsanitizer=address`.
    println!("cargo:rustc-check-cfg=cfg(greenlet_asan)");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let rustflags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if rustflags
        .split('\x1f')
        .any(|flag| flag.contains("sanitizer=address"))
    {
        println!("cargo:rustc-cfg=greenlet_asan");
    }
    if NIGHTLY {
        println!("cargo:rustc-cfg=nightly");
    }

    if external_assembly_required {
        cc::Build::new()
            .file("src/detail/asm/asm_ppc64le_elf.S")
            .compile("ppc64le-asm-lib");
    }
}
