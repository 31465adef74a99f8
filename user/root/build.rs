// Links the program at 0x01000000 (virtual = physical) with the shared user linker script.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rustc-link-arg-bins=--defsym=L4_LINK_BASE=0x01000000");
    println!("cargo:rustc-link-arg-bins=-T{dir}/../l4/link/user.ld");
    println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rerun-if-changed={dir}/../l4/link/user.ld");
}
