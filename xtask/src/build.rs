//! Building the bare-metal images with cargo.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::qemu::{Boot, Module};

pub const TARGET: &str = "x86_64-unknown-none";
/// Bare-metal packages: the kernel and every user program booted as a module.
pub const PACKAGES: &[&str] = &["kernel", "sigma0", "root"];

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
    let root = workspace_root();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(&root)
        .args(["build", "--release", "--target", TARGET]);
    for p in PACKAGES {
        cmd.args(["-p", p]);
    }
    let status = cmd.status().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("cargo build exited with {status}"));
    }
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
    Ok(Images {
        dir: root.join("target").join(TARGET).join("release"),
    })
}
