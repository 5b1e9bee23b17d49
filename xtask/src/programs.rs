//! User programs: which exist, building them for `x86_64-unknown-none`, and checking that what
//! was built is a static ELF executable the kernel's loader takes.
//!
//! Discovery reads Cargo.toml files with `toml` rather than running `cargo metadata`: it is
//! instant, needs no JSON parser, and the rule is simple. A user program is a binary target of a
//! workspace member under `userland/`, `servers/` or `drivers/`; members are listed in the root
//! `Cargo.toml` (`dir/*` globs are expanded). A member's binaries are its `[[bin]]` names, plus
//! (unless `autobins = false`) its package name when `src/main.rs` exists and no `[[bin]]` uses
//! that file, and the stems of `src/bin/*.rs`. Libraries such as `libsys` have none.
//!
//! Programs are built with exactly
//! `CARGO_TARGET_DIR=target/user RUSTFLAGS="-C relocation-model=static"
//! cargo build --release --target x86_64-unknown-none -p NAME...`
//! (a target directory of their own, so these flags never invalidate the kernel's or the host
//! crates' builds), and read from `target/user/x86_64-unknown-none/release/BINARY`.

use std::path::{Path, PathBuf};

use crate::Error;
use crate::images::{self, KERNEL_TARGET};

/// Folders whose workspace members are user programs.
pub const PROGRAM_DIRS: [&str; 3] = ["userland", "servers", "drivers"];
/// Target directory of user programs, relative to the workspace root.
pub const USER_TARGET_DIR: &str = "target/user";
/// The flags user programs are built with.
pub const USER_RUSTFLAGS: &str = "-C relocation-model=static";

/// One user program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Its binary target's name, which manifests use as `binary`.
    pub binary: String,
    /// The package that builds it (`cargo build -p PACKAGE`).
    pub package: String,
}

fn read_toml(path: &Path) -> Result<toml::Table, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Failed(format!("cannot read {}: {e}", path.display())))?;
    text.parse::<toml::Table>()
        .map_err(|e| Error::Failed(format!("{}: {}", path.display(), e.message().trim())))
}

/// The workspace members listed in `root/Cargo.toml`, as paths relative to `root`, with `dir/*`
/// expanded to the folders of `dir` that hold a Cargo.toml.
pub fn workspace_members(root: &Path) -> Result<Vec<String>, Error> {
    let manifest = read_toml(&root.join("Cargo.toml"))?;
    let members = manifest
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .ok_or_else(|| Error::Failed("Cargo.toml has no [workspace] members list".to_string()))?;
    let mut out = Vec::new();
    for m in members.iter().filter_map(|m| m.as_str()) {
        match m.strip_suffix("/*") {
            Some(dir) if !dir.contains('*') => {
                let mut found: Vec<String> = std::fs::read_dir(root.join(dir))
                    .map_err(|e| Error::Failed(format!("workspace member '{m}': {e}")))?
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().join("Cargo.toml").is_file())
                    .filter_map(|e| Some(format!("{dir}/{}", e.file_name().to_str()?)))
                    .collect();
                found.sort();
                out.extend(found);
            }
            _ if m.contains('*') => {
                return Err(Error::Failed(format!(
                    "workspace member '{m}': xtask only understands 'dir/*' globs"
                )));
            }
            _ => out.push(m.to_string()),
        }
    }
    Ok(out)
}

/// The binaries of the package in `dir`, as described in the module comment.
fn package_programs(dir: &Path, manifest: &toml::Table) -> Vec<Program> {
    let Some(package) = manifest
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
    else {
        return Vec::new();
    };
    let program = |binary: &str| Program {
        binary: binary.to_string(),
        package: package.to_string(),
    };
    let bins: Vec<&toml::Value> = manifest
        .get("bin")
        .and_then(|b| b.as_array())
        .map(|b| b.iter().collect())
        .unwrap_or_default();
    let mut out: Vec<Program> = bins
        .iter()
        .filter_map(|b| b.get("name")?.as_str())
        .map(program)
        .collect();
    let autobins = manifest
        .get("package")
        .and_then(|p| p.get("autobins"))
        .and_then(|a| a.as_bool())
        .unwrap_or(true);
    if autobins {
        let main_taken = bins.iter().any(|b| {
            b.get("path")
                .and_then(|p| p.as_str())
                .is_some_and(|p| Path::new(p) == Path::new("src/main.rs"))
        });
        if !main_taken
            && dir.join("src/main.rs").is_file()
            && !out.iter().any(|p| p.binary == package)
        {
            out.push(program(package));
        }
        if let Ok(entries) = std::fs::read_dir(dir.join("src/bin")) {
            let mut stems: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "rs"))
                .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
                .collect();
            stems.sort();
            for s in stems {
                if !out.iter().any(|p| p.binary == s) {
                    out.push(program(&s));
                }
            }
        }
    }
    out
}

/// Every user program of the workspace at `root`, in member order.
pub fn discover(root: &Path) -> Result<Vec<Program>, Error> {
    let mut all: Vec<Program> = Vec::new();
    for member in workspace_members(root)? {
        let top = member.split('/').next().unwrap_or("");
        if !PROGRAM_DIRS.contains(&top) {
            continue;
        }
        let dir = root.join(&member);
        let manifest = read_toml(&dir.join("Cargo.toml"))?;
        for p in package_programs(&dir, &manifest) {
            if let Some(other) = all.iter().find(|o| o.binary == p.binary) {
                return Err(Error::Failed(format!(
                    "two user programs are called '{}' (packages '{}' and '{}')",
                    p.binary, other.package, p.package
                )));
            }
            all.push(p);
        }
    }
    Ok(all)
}

/// Why `bytes` is not a static x86-64 ELF64 executable (`ET_EXEC`), if it is not.
pub fn check_elf(bytes: &[u8]) -> Result<(), String> {
    const ET_EXEC: u16 = 2;
    const EM_X86_64: u16 = 62;
    if bytes.len() < 64 {
        return Err(format!(
            "{} bytes, too short for an ELF header",
            bytes.len()
        ));
    }
    if bytes[..4] != *b"\x7fELF" {
        return Err("not an ELF file".to_string());
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("not a little-endian ELF64 file".to_string());
    }
    let half = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    match half(16) {
        ET_EXEC => {}
        3 => {
            return Err(
                "a position-independent executable (ET_DYN); build with -C relocation-model=static"
                    .to_string(),
            );
        }
        t => return Err(format!("ELF type {t}, expected ET_EXEC (2)")),
    }
    if half(18) != EM_X86_64 {
        return Err(format!("ELF machine {}, expected x86-64 (62)", half(18)));
    }
    Ok(())
}

/// Where a built program lies.
pub fn binary_path(root: &Path, binary: &str) -> PathBuf {
    root.join(USER_TARGET_DIR)
        .join(KERNEL_TARGET)
        .join("release")
        .join(binary)
}

/// Builds the programs called `binaries` (known to `programs`) and returns each one's ELF
/// bytes without debug sections (`strip`), in the order asked. A failed build leaves cargo's
/// error on stderr.
pub fn build(binaries: &[&str], programs: &[Program]) -> Result<Vec<(String, Vec<u8>)>, Error> {
    if binaries.is_empty() {
        return Ok(Vec::new());
    }
    let mut packages: Vec<&str> = Vec::new();
    for b in binaries {
        let p = programs
            .iter()
            .find(|p| p.binary == *b)
            .ok_or_else(|| Error::Failed(format!("'{b}' is not a user program")))?;
        if !packages.contains(&p.package.as_str()) {
            packages.push(&p.package);
        }
    }
    eprintln!("building user programs: {}...", binaries.join(", "));
    let mut cmd = images::cargo();
    cmd.env("CARGO_TARGET_DIR", USER_TARGET_DIR)
        .env("RUSTFLAGS", USER_RUSTFLAGS)
        // Would take precedence over RUSTFLAGS.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .args(["build", "--release", "--target", KERNEL_TARGET]);
    for p in &packages {
        cmd.args(["-p", p]);
    }
    let status = cmd
        .status()
        .map_err(|e| Error::Failed(format!("could not run cargo to build user programs: {e}")))?;
    if !status.success() {
        return Err(Error::Failed(format!(
            "building user programs ({}) failed ({status})",
            packages.join(", ")
        )));
    }
    let root = images::workspace_root();
    binaries
        .iter()
        .map(|b| {
            let path = binary_path(&root, b);
            let bytes = std::fs::read(&path).map_err(|e| {
                Error::Failed(format!("cannot read user program {}: {e}", path.display()))
            })?;
            let unusable = |why: String| {
                Error::Failed(format!(
                    "user program {} is unusable: {why}",
                    path.display()
                ))
            };
            check_elf(&bytes).map_err(unusable)?;
            let bytes = crate::strip::without_debug(&bytes).map_err(unusable)?;
            Ok((b.to_string(), bytes))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(kind: u16) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&kind.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b
    }

    #[test]
    fn elf_checks() {
        assert_eq!(check_elf(&elf(2)), Ok(()));
        assert!(check_elf(&elf(3)).unwrap_err().contains("ET_DYN"));
        assert!(check_elf(&elf(1)).unwrap_err().contains("ELF type 1"));
        assert!(check_elf(b"#!/bin/sh\n").unwrap_err().contains("too short"));
        assert!(check_elf(&[0u8; 64]).unwrap_err().contains("not an ELF"));
        let mut b = elf(2);
        b[4] = 1;
        assert!(check_elf(&b).unwrap_err().contains("ELF64"));
        let mut b = elf(2);
        b[18] = 3;
        assert!(check_elf(&b).unwrap_err().contains("machine 3"));
    }

    #[test]
    fn the_workspace_programs() {
        let all = discover(&images::workspace_root()).unwrap();
        let names: Vec<&str> = all.iter().map(|p| p.binary.as_str()).collect();
        for want in ["shell", "testproc"] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert!(!names.contains(&"libsys"), "a library is no program");
        assert!(!names.contains(&"xtask") && !names.contains(&"axolotl-kernel"));
    }

    #[test]
    fn bins_from_a_package() {
        let dir = std::env::temp_dir().join(format!("xtask-programs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src/bin")).unwrap();
        std::fs::write(dir.join("src/main.rs"), "").unwrap();
        std::fs::write(dir.join("src/bin/extra.rs"), "").unwrap();
        let m: toml::Table =
            "[package]\nname = \"pkg\"\n[[bin]]\nname = \"named\"\npath = \"src/x.rs\"\n"
                .parse()
                .unwrap();
        let bins: Vec<String> = package_programs(&dir, &m)
            .into_iter()
            .map(|p| p.binary)
            .collect();
        assert_eq!(bins, ["named", "pkg", "extra"]);
        let m: toml::Table = "[package]\nname = \"pkg\"\nautobins = false\n[[bin]]\nname = \"b\"\npath = \"src/main.rs\"\n"
            .parse()
            .unwrap();
        let p = package_programs(&dir, &m);
        assert_eq!(
            p,
            [Program {
                binary: "b".into(),
                package: "pkg".into()
            }]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn member_globs() {
        let dir = std::env::temp_dir().join(format!("xtask-members-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("servers/b")).unwrap();
        std::fs::create_dir_all(dir.join("servers/a")).unwrap();
        std::fs::create_dir_all(dir.join("servers/notes")).unwrap();
        std::fs::write(dir.join("servers/a/Cargo.toml"), "").unwrap();
        std::fs::write(dir.join("servers/b/Cargo.toml"), "").unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            "[workspace]\nmembers = [\"xtask\", \"servers/*\"]\n",
        )
        .unwrap();
        assert_eq!(
            workspace_members(&dir).unwrap(),
            ["xtask", "servers/a", "servers/b"]
        );
        std::fs::write(
            dir.join("Cargo.toml"),
            "[workspace]\nmembers = [\"s*/x\"]\n",
        )
        .unwrap();
        assert!(workspace_members(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
