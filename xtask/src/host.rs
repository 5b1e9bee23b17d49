//! What the host must provide to run the guest: `qemu-system-x86_64`, OVMF for UEFI boots, and
//! `/dev/kvm` for `--accel kvm`. Missing packages are installed when xtask runs as root (CI);
//! otherwise xtask says exactly what to install.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// The QEMU binary xtask runs.
pub const QEMU: &str = "qemu-system-x86_64";
/// What to tell a user who is not root.
pub const INSTALL_HINT: &str = "install them with: sudo apt-get install qemu-system-x86 ovmf";

/// UEFI firmware found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ovmf {
    /// Split firmware: read-only code and a variable store template that each run copies.
    Pflash {
        /// `OVMF_CODE*.fd`.
        code: PathBuf,
        /// `OVMF_VARS*.fd`.
        vars: PathBuf,
    },
    /// A single combined image, loaded with `-bios`.
    Combined(PathBuf),
}

/// Host programs and files found for a run.
#[derive(Debug, Clone)]
pub struct Tools {
    /// Path of `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// UEFI firmware, when it was asked for.
    pub ovmf: Option<Ovmf>,
}

/// Known places of OVMF on Debian/Ubuntu, Fedora and Arch, best first.
const OVMF_PAIRS: [(&str, &str); 4] = [
    (
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    (
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/OVMF/OVMF_VARS.fd",
    ),
    (
        "/usr/share/edk2/ovmf/OVMF_CODE.fd",
        "/usr/share/edk2/ovmf/OVMF_VARS.fd",
    ),
    (
        "/usr/share/edk2/x64/OVMF_CODE.4m.fd",
        "/usr/share/edk2/x64/OVMF_VARS.4m.fd",
    ),
];
const OVMF_COMBINED: [&str; 2] = ["/usr/share/ovmf/OVMF.fd", "/usr/share/qemu/OVMF.fd"];

/// The first OVMF installation found.
pub fn find_ovmf() -> Option<Ovmf> {
    for (code, vars) in OVMF_PAIRS {
        if Path::new(code).is_file() && Path::new(vars).is_file() {
            return Some(Ovmf::Pflash {
                code: code.into(),
                vars: vars.into(),
            });
        }
    }
    OVMF_COMBINED
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .map(Ovmf::Combined)
}

/// Looks `program` up in `PATH`.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The effective user id from the text of `/proc/self/status` (`Uid: real effective saved fs`).
pub fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line["Uid:".len()..]
        .split_ascii_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// True when xtask runs as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .as_deref()
        .and_then(effective_uid)
        == Some(0)
}

fn missing(need_ovmf: bool) -> Vec<&'static str> {
    let mut m = Vec::new();
    if find_in_path(QEMU).is_none() {
        m.push("qemu-system-x86_64 (package qemu-system-x86)");
    }
    if need_ovmf && find_ovmf().is_none() {
        m.push("OVMF UEFI firmware (package ovmf)");
    }
    m
}

/// Finds QEMU (and OVMF when `need_ovmf`), installing them first when they are missing and we
/// are root. Not root and missing: prints [`INSTALL_HINT`] and fails.
pub fn ensure_tools(need_ovmf: bool) -> Result<Tools, Error> {
    let absent = missing(need_ovmf);
    if !absent.is_empty() {
        eprintln!("missing on this host: {}", absent.join(", "));
        if !is_root() {
            eprintln!("{INSTALL_HINT}");
            return Err(Error::Reported(1));
        }
        install_packages()?;
        let still = missing(need_ovmf);
        if !still.is_empty() {
            return Err(Error::Failed(format!(
                "still missing after apt-get install: {}",
                still.join(", ")
            )));
        }
    }
    let qemu = find_in_path(QEMU).ok_or_else(|| Error::Failed(format!("{QEMU} vanished")))?;
    let ovmf = if need_ovmf { find_ovmf() } else { None };
    Ok(Tools { qemu, ovmf })
}

/// `apt-get update && apt-get install -y qemu-system-x86 ovmf`, output shown.
fn install_packages() -> Result<(), Error> {
    if find_in_path("apt-get").is_none() {
        return Err(Error::Failed(
            "running as root but apt-get is not available: install QEMU (qemu-system-x86_64) \
             and OVMF with this system's package manager"
                .to_string(),
        ));
    }
    for args in [
        &["update"][..],
        &["install", "-y", "qemu-system-x86", "ovmf"][..],
    ] {
        eprintln!("running: apt-get {}", args.join(" "));
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| Error::Failed(format!("could not run apt-get: {e}")))?;
        if !status.success() {
            return Err(Error::Failed(format!(
                "apt-get {} failed ({status})",
                args[0]
            )));
        }
    }
    Ok(())
}

/// Checks that `/dev/kvm` can be opened for `--accel kvm`.
pub fn check_kvm() -> Result<(), Error> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| {
            Error::Failed(format!(
                "--accel kvm needs /dev/kvm, which cannot be opened ({e}); use --accel tcg, or add \
             yourself to the kvm group"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn euid_from_proc_status() {
        let status =
            "Name:\txtask\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Uid:\t1000\t1001\t1000\t1000\n"), Some(1001));
        assert_eq!(effective_uid("Name: x\n"), None);
        assert_eq!(effective_uid("Uid:\t5\n"), None);
        // Our own status always parses.
        assert!(effective_uid(&std::fs::read_to_string("/proc/self/status").unwrap()).is_some());
    }

    #[test]
    fn path_lookup() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("no-such-program-axolotl").is_none());
    }
}
