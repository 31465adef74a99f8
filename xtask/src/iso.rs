//! `cargo xtask iso`: a bootable ISO image (`target/l4rs.iso`) with GRUB 2 (BIOS), which loads
//! the kernel as a multiboot-1 image (`multiboot`) and sigma0 and the root server as modules,
//! like the QEMU `-kernel`/`-initrd` boot; and, for the tests, `target/l4rs-stage2.iso`, where
//! GRUB loads the second-stage loader `stage2` instead (the reference boot chain). Needs
//! grub-mkrescue, the i386-pc GRUB modules, xorriso and mtools; `scripts/setup.sh --iso`
//! installs them when missing.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::build::{self, Images};

/// The GRUB configuration: no menu delay, the demo.
pub const GRUB_CFG: &str = "\
set timeout=0
set default=0

menuentry \"l4rs: L4 X.2 microkernel demo (console on COM1, 115200 8N1)\" {
    multiboot /boot/l4rs/kernel
    module /boot/l4rs/sigma0 sigma0
    module /boot/l4rs/root root demo
    boot
}
";

/// The reference boot chain on GRUB: GRUB loads the second-stage loader (`stage2`, doing
/// kickstart's job) with the kernel, sigma0 and the root server as modules (README "Booting").
pub const GRUB_CFG_STAGE2: &str = "\
set timeout=0
set default=0

menuentry \"l4rs through a second-stage loader (console on COM1, 115200 8N1)\" {
    multiboot /boot/l4rs/stage2
    module /boot/l4rs/kernel kernel
    module /boot/l4rs/sigma0 sigma0
    module /boot/l4rs/root root demo
    boot
}
";

fn have_tools() -> bool {
    let on_path = |t: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    on_path("grub-mkrescue")
        && on_path("xorriso")
        && on_path("mformat")
        && Path::new("/usr/lib/grub/i386-pc").is_dir()
}

/// Makes sure grub-mkrescue and its helpers are there (runs `scripts/setup.sh --iso`).
fn ensure_tools() -> Result<(), String> {
    if have_tools() {
        return Ok(());
    }
    let root = build::workspace_root();
    let status = Command::new(root.join("scripts/setup.sh"))
        .arg("--iso")
        .current_dir(&root)
        .status()
        .map_err(|e| format!("cannot run scripts/setup.sh --iso: {e}"))?;
    if !status.success() || !have_tools() {
        return Err(format!(
            "grub-mkrescue (packages grub-pc-bin grub-common xorriso mtools) is not available \
             and `scripts/setup.sh --iso` could not install it ({status})"
        ));
    }
    Ok(())
}

/// Builds `target/l4rs.iso` from the built images; returns its path.
pub fn build(images: &Images) -> Result<PathBuf, String> {
    let files = [
        (images.kernel(), "kernel"),
        (images.user("sigma0"), "sigma0"),
        (images.user("root"), "root"),
    ];
    build_iso(&files, GRUB_CFG, "l4rs")
}

/// Builds `target/l4rs-stage2.iso`: GRUB → stage2 → kernel, sigma0, root server (stripped
/// module files, as they must end below the kernel's 6 MiB wherever GRUB puts them).
pub fn build_stage2(images: &Images) -> Result<PathBuf, String> {
    let files = [
        (images.stage2(), "stage2"),
        (images.stripped("kernel")?, "kernel"),
        (images.stripped("sigma0")?, "sigma0"),
        (images.stripped("root")?, "root"),
    ];
    build_iso(&files, GRUB_CFG_STAGE2, "l4rs-stage2")
}

fn build_iso(files: &[(PathBuf, &str)], cfg: &str, name: &str) -> Result<PathBuf, String> {
    ensure_tools()?;
    let target = build::workspace_root().join("target");
    let tree = target.join(format!("{name}-iso-tree"));
    let _ = std::fs::remove_dir_all(&tree);
    let dir = tree.join("boot/l4rs");
    std::fs::create_dir_all(tree.join("boot/grub")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for (src, name) in files {
        std::fs::copy(src, dir.join(name)).map_err(|e| format!("copy {}: {e}", src.display()))?;
    }
    std::fs::write(tree.join("boot/grub/grub.cfg"), cfg).map_err(|e| e.to_string())?;
    let iso = target.join(format!("{name}.iso"));
    let out = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&iso)
        .arg(&tree)
        .output()
        .map_err(|e| format!("cannot run grub-mkrescue: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "grub-mkrescue failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(iso)
}

pub fn run(_args: &[String]) -> ExitCode {
    let images = match build::build_all() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("build failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    match build(&images) {
        Ok(iso) => {
            let size = std::fs::metadata(&iso).map(|m| m.len()).unwrap_or(0);
            println!("{} ({} KiB)", iso.display(), size / 1024);
            println!(
                "boot it: qemu-system-x86_64 -cdrom {} -serial stdio   (or write it to a USB stick)",
                iso.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("iso: {e}");
            ExitCode::FAILURE
        }
    }
}
