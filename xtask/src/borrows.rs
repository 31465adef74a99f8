//! The borrow facts of issue 11, checked on the kernel's source text (a lint step of `test`):
//! no safe function returns `&'static mut`, and no safe function turns `&self` into `&mut`.
//! Such accessors exist, but as `unsafe fn` with a `# Safety` contract that each call site
//! states in its `// SAFETY:` line (docs/decisions/009-kernel-core-v2.md).

use std::fs;
use std::path::{Path, PathBuf};

/// `cargo xtask borrow-facts [DIR]`: lists the signatures that break a fact (default: the
/// kernel's sources); fails if there are any.
pub fn run(args: &[String]) -> std::process::ExitCode {
    let dir = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::build::workspace_root().join("kernel/src"));
    let bad = violations(&dir);
    for b in &bad {
        println!("{b}");
    }
    println!("{} signatures break a borrow fact", bad.len());
    if bad.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// One function signature that breaks a fact: `file:line: name: what`.
pub fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    collect(src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        let code = strip_line_comments(&text);
        for (line, name, sig) in signatures(&code) {
            let what = breaks(&sig);
            if let Some(what) = what {
                out.push(format!("{}:{line}: fn {name}: {what}", f.display()));
            }
        }
    }
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn strip_line_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// (line, name, text from the item's start to its body) of every `fn` item.
fn signatures(code: &str) -> Vec<(usize, String, String)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(k) = code[i..].find("fn ") {
        let at = i + k;
        i = at + 3;
        if at > 0 && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_') {
            continue;
        }
        // The item starts after the previous `;`, `{`, `}` or `]` (attributes).
        let start = code[..at]
            .rfind([';', '{', '}', ']'])
            .map(|s| s + 1)
            .unwrap_or(0);
        let end = code[at..]
            .find(['{', ';'])
            .map(|e| at + e)
            .unwrap_or(code.len());
        let name: String = code[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        let line = code[..at].matches('\n').count() + 1;
        out.push((line, name, code[start..end].to_string()));
    }
    out
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Which fact a signature breaks, if any.
fn breaks(sig: &str) -> Option<&'static str> {
    let sig = squash(sig);
    let fn_at = sig.find("fn ")?;
    if sig[..fn_at].split(' ').any(|w| w == "unsafe") {
        return None;
    }
    let (params, ret) = sig.split_once("->")?;
    let ret = ret.replace("& '", "&'").replace("& mut", "&mut");
    if ret.contains("&'static mut") {
        return Some("safe fn returns &'static mut");
    }
    let params = params.replace("& '", "&'").replace("& mut", "&mut");
    let shared_self = params.contains("&self")
        || params.match_indices("&'").any(|(i, _)| {
            params[i..]
                .split(' ')
                .nth(1)
                .is_some_and(|w| w.starts_with("self"))
        });
    let ret_mut = ret.contains("&mut")
        || ret.match_indices("&'").any(|(i, _)| {
            ret[i..]
                .split(' ')
                .nth(1)
                .is_some_and(|w| w.starts_with("mut"))
        });
    (shared_self && ret_mut).then_some("safe fn turns &self into &mut")
}

#[cfg(test)]
mod tests {
    use super::breaks;

    #[test]
    fn facts() {
        assert!(breaks("pub fn current() -> &'static mut Tcb").is_some());
        assert!(breaks("pub unsafe fn current() -> &'static mut Tcb").is_none());
        assert!(breaks("#[inline] pub fn get(&self) -> &mut T").is_some());
        assert!(breaks("pub fn get<'a>(&'a self) -> &'a mut T").is_some());
        assert!(breaks("pub fn frame(&mut self) -> &mut TrapFrame").is_none());
        assert!(breaks("fn link(&mut self, n: u32) -> &mut Link").is_none());
        assert!(breaks("pub fn kip_phys() -> u64").is_none());
        assert!(breaks("fn walk(&self, va: u64) -> Option<(&'static mut u64, u32)>").is_some());
    }
}
