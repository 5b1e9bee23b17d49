//! From source to bootable disk: builds the kernel with cargo, packs the boot modules into an AXRD
//! ramdisk (`klib::ramdisk`) and wraps kernel and ramdisk into BIOS and UEFI images with the
//! `bootloader` crate.
//!
//! Files live under `target/axolotl/`: the default images of `cargo xtask build` directly in it,
//! and every run with its own command line (a test scenario, `run --cmdline`) in a folder of its
//! own, `target/axolotl/NAME/`, so that concurrent runs never share a file. Every file is written
//! under a temporary name and renamed into place, so a QEMU that is still reading an older image
//! keeps its copy.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;
use crate::args::Firmware;

/// The kernel's package and binary name.
pub const KERNEL_PACKAGE: &str = "axolotl-kernel";
/// The kernel's target.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// The workspace root (the parent of xtask's own manifest directory).
pub fn workspace_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the root) or `ROOT/target`.
pub fn target_dir() -> PathBuf {
    let root = workspace_root();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// Where xtask puts ramdisks and images: `target/axolotl`.
pub fn out_dir() -> PathBuf {
    target_dir().join("axolotl")
}

/// The cargo that runs xtask (so the pinned toolchain builds the kernel too).
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Builds the kernel and returns the path of its ELF file.
pub fn build_kernel(release: bool) -> Result<PathBuf, Error> {
    let profile = if release { "release" } else { "debug" };
    eprintln!("building kernel ({profile})...");
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--package",
        KERNEL_PACKAGE,
        "--target",
        KERNEL_TARGET,
    ]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .map_err(|e| Error::Failed(format!("could not run cargo to build the kernel: {e}")))?;
    if !status.success() {
        return Err(Error::Failed(format!(
            "building the kernel failed ({status})"
        )));
    }
    let path = target_dir()
        .join(KERNEL_TARGET)
        .join(profile)
        .join(KERNEL_PACKAGE);
    if !path.is_file() {
        return Err(Error::Failed(format!(
            "cargo built the kernel but {} does not exist",
            path.display()
        )));
    }
    Ok(path)
}

/// The modules of the boot ramdisk, in archive order: today only the command line. User-space
/// programs (ELF files) will be appended here.
pub fn ramdisk_modules(cmdline: &str) -> Vec<(String, Vec<u8>)> {
    vec![("cmdline".to_string(), cmdline.as_bytes().to_vec())]
}

/// The AXRD archive of `modules`.
pub fn ramdisk_bytes(modules: &[(String, Vec<u8>)]) -> Result<Vec<u8>, Error> {
    let refs: Vec<(&str, &[u8])> = modules
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let mut out = Vec::new();
    klib::ramdisk::write_archive(&refs, &mut |chunk| out.extend_from_slice(chunk))
        .map_err(|e| Error::Failed(format!("cannot pack the ramdisk: {e:?}")))?;
    Ok(out)
}

/// A file name that no other process writes: `PATH.tmp-PID`.
fn temp_beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = temp_beside(path);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::Failed(format!("cannot write {}: {e}", path.display()))
        })
}

/// File name of the image of `firmware` in its folder.
pub fn image_name(firmware: Firmware) -> &'static str {
    match firmware {
        Firmware::Bios => "axolotl-bios.img",
        Firmware::Uefi => "axolotl-uefi.img",
    }
}

/// Makes the images for `firmwares` in `dir`: the ramdisk `dir/ramdisk.axrd` with `cmdline`,
/// then `dir/axolotl-bios.img` and/or `dir/axolotl-uefi.img`. Returns the image paths in order.
pub fn make_images(
    kernel: &Path,
    dir: &Path,
    cmdline: &str,
    firmwares: &[Firmware],
) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Failed(format!("cannot create {}: {e}", dir.display())))?;
    let ramdisk = dir.join("ramdisk.axrd");
    write_atomically(&ramdisk, &ramdisk_bytes(&ramdisk_modules(cmdline))?)?;
    let mut builder = bootloader::DiskImageBuilder::new(kernel.to_path_buf());
    builder.set_ramdisk(ramdisk);
    let mut images = Vec::new();
    for &fw in firmwares {
        let image = dir.join(image_name(fw));
        let tmp = temp_beside(&image);
        let made = match fw {
            Firmware::Bios => builder.create_bios_image(&tmp),
            Firmware::Uefi => builder.create_uefi_image(&tmp),
        };
        if let Err(e) = made {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::Failed(format!(
                "cannot make {}: {e:#}",
                image.display()
            )));
        }
        std::fs::rename(&tmp, &image)
            .map_err(|e| Error::Failed(format!("cannot write {}: {e}", image.display())))?;
        images.push(image);
    }
    Ok(images)
}

/// A folder name for a run with a non-default command line: `run-` and a hash of the line, so
/// equal lines share their images and different ones never collide.
pub fn run_dir_name(cmdline: &str) -> String {
    // FNV-1a: stable across Rust versions, unlike std's hasher.
    let hash = cmdline.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("run-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use klib::ramdisk::Ramdisk;

    #[test]
    fn ramdisk_holds_the_cmdline() {
        let bytes = ramdisk_bytes(&ramdisk_modules("log=debug test=kernel")).unwrap();
        let disk = Ramdisk::parse(&bytes).unwrap();
        assert_eq!(disk.get("cmdline"), Some(&b"log=debug test=kernel"[..]));
        assert_eq!(disk.len(), 1);
    }

    #[test]
    fn bad_module_names_are_errors() {
        let long = vec![("x".repeat(40), vec![])];
        assert!(ramdisk_bytes(&long).is_err());
    }

    #[test]
    fn run_dirs() {
        assert_eq!(run_dir_name("a"), run_dir_name("a"));
        assert_ne!(
            run_dir_name("log=info test=hang"),
            run_dir_name("log=info test=panic")
        );
        assert!(run_dir_name("").starts_with("run-"));
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = std::env::temp_dir().join(format!("xtask-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("f");
        write_atomically(&f, b"one").unwrap();
        write_atomically(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary left behind"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn layout() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(out_dir().ends_with("axolotl"));
        assert_eq!(image_name(Firmware::Uefi), "axolotl-uefi.img");
    }
}
