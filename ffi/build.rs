//! Gives libuml.so its soname, `libuml.so.<ABI version>`: programs linked against it record
//! that name, so they keep loading any later library with the same ABI and refuse one whose
//! ABI changed. The version is `UML_ABI_VERSION` (a unit test in src/lib.rs checks they agree).

const ABI_VERSION: u32 = 1;

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libuml.so.{ABI_VERSION}");
    }
    println!("cargo:rustc-env=UML_SONAME_ABI_VERSION={ABI_VERSION}");
    println!("cargo:rerun-if-changed=build.rs");
}
