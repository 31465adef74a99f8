//! Building the bare-metal images with cargo.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::qemu::{Boot, Module};

pub const TARGET: &str = "x86_64-unknown-none";
/// Bare-metal packages: the kernel, every user program booted as a module, and `stage2`, the
/// second-stage loader that boots them the way the reference boot chain does (spec 7).
pub const PACKAGES: &[&str] = &["kernel", "sigma0", "root", "stage2"];

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub struct Images {
    pub dir: PathBuf,
}

impl Images {
    /// The images of the `checked` profile (release with debug assertions and overflow
    /// checks), next to these.
    pub fn checked(&self) -> Images {
        Images {
            dir: self.dir.with_file_name("checked"),
        }
    }
}

impl Images {
    pub fn kernel(&self) -> PathBuf {
        self.dir.join("kernel")
    }
    /// The kernel built with the `invariants` feature (self-checks; fuzz boots only).
    pub fn kernel_checked(&self) -> PathBuf {
        workspace_root()
            .join("target")
            .join("invariants")
            .join(TARGET)
            .join("release")
            .join("kernel")
    }
    pub fn user(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    pub fn has_user(&self, name: &str) -> bool {
        self.user(name).exists()
    }
    /// The second-stage loader (a multiboot image doing kickstart's job, spec 7.2).
    pub fn stage2(&self) -> PathBuf {
        self.dir.join("stage2")
    }
    /// A copy of image `name` without symbols and debug information (as boot modules are
    /// usually given: the first-stage loader places module files one after the other above
    /// the second-stage loader at 1 MiB, and they must end below the kernel's 6 MiB).
    pub fn stripped(&self, name: &str) -> Result<PathBuf, String> {
        let src = self.dir.join(name);
        let dir = self.dir.join("stripped");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let dst = dir.join(name);
        let data = std::fs::read(&src).map_err(|e| format!("{}: {e}", src.display()))?;
        let out =
            strip_elf64(&data).ok_or_else(|| format!("{}: not an ELF64 file", src.display()))?;
        std::fs::write(&dst, out).map_err(|e| e.to_string())?;
        Ok(dst)
    }
    /// The boot of the README's run command.
    pub fn demo_boot(&self) -> Boot {
        let mut b = Boot::new(self.kernel());
        if self.has_user("sigma0") && self.has_user("root") {
            b.modules = vec![
                Module {
                    path: self.user("sigma0"),
                    args: String::new(),
                },
                Module {
                    path: self.user("root"),
                    args: "demo".into(),
                },
            ];
        }
        b
    }
}

pub fn build_all() -> Result<Images, String> {
    build_profile("release")
}

/// Builds the bare-metal packages with a cargo profile (`release`, `checked`).
pub fn build_profile(profile: &str) -> Result<Images, String> {
    let root = workspace_root();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(&root)
        .args(["build", "--profile", profile, "--target", TARGET]);
    for p in PACKAGES {
        cmd.args(["-p", p]);
    }
    let status = cmd.status().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("cargo build exited with {status}"));
    }
    if profile == "release" {
        // The fuzzer's kernel: the same sources with the `invariants` feature, in its own
        // target directory (never the production image).
        let status = Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["build", "--release", "--target", TARGET, "-p", "kernel"])
            .args([
                "--features",
                "invariants",
                "--target-dir",
                "target/invariants",
            ])
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!(
                "cargo build (kernel, invariants) exited with {status}"
            ));
        }
    }
    let images = Images {
        dir: root.join("target").join(TARGET).join(profile),
    };
    // Module files for a boot through a second-stage loader (README "Booting").
    for name in ["kernel", "sigma0", "root"] {
        images.stripped(name)?;
    }
    Ok(images)
}

/// An ELF64 file cut after its program headers and the file contents of its PT_LOAD segments,
/// with the section-header fields cleared (what `strip` leaves that a loader needs). Segment
/// contents come first in our images (the linker places debug sections after them).
pub fn strip_elf64(data: &[u8]) -> Option<Vec<u8>> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(data.get(o..o + 2)?.try_into().ok()?) as u64);
    let u64_at = |o: usize| Some(u64::from_le_bytes(data.get(o..o + 8)?.try_into().ok()?));
    if data.get(..4)? != b"\x7fELF" || *data.get(4)? != 2 {
        return None;
    }
    let phoff = u64_at(32)?;
    let (phentsize, phnum) = (u16_at(54)?, u16_at(56)?);
    let mut end = phoff + phentsize * phnum;
    for i in 0..phnum {
        let ph = (phoff + i * phentsize) as usize;
        if u64::from(u32::from_le_bytes(data.get(ph..ph + 4)?.try_into().ok()?)) == 1 {
            end = end.max(u64_at(ph + 8)? + u64_at(ph + 32)?);
        }
    }
    let mut out = data.get(..end as usize)?.to_vec();
    out[40..48].fill(0); // e_shoff
    out[58..64].fill(0); // e_shentsize, e_shnum, e_shstrndx
    Some(out)
}

/// Builds the kernel alone with extra cargo features into its own target directory
/// (`target/features-<features>`), leaving the normal images alone; returns its path.
pub fn build_kernel_with_features(features: &str) -> Result<PathBuf, String> {
    let root = workspace_root();
    let dir = root.join("target").join(format!("features-{features}"));
    let status = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["build", "--release", "--target", TARGET, "-p", "kernel"])
        .args(["--features", features, "--target-dir"])
        .arg(&dir)
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("cargo build exited with {status}"));
    }
    Ok(dir.join(TARGET).join("release").join("kernel"))
}
