//! From source to bootable disk: builds the kernel with cargo, validates the system manifest and
//! builds the user programs it names (`manifest`, `programs`), packs the boot modules into an
//! AXRD ramdisk (`klib::ramdisk`) and wraps kernel and ramdisk into BIOS and UEFI images with the
//! `bootloader` crate.
//!
//! The ramdisk holds, in order: `cmdline` (the kernel command line), `manifest` (the boot module
//! table, `klib::manifest` format) and one module per distinct binary the manifest names, called
//! by the binary's name and holding its ELF file without debug sections (`strip`). A boot
//! without a manifest (the kernel-only scenarios) has `cmdline` alone.
//!
//! Files live under `target/axolotl/`: the default images of `cargo xtask build` directly in it,
//! and every run with its own command line (a test scenario, `run --cmdline`) in a folder of its
//! own, `target/axolotl/NAME/`, so that concurrent runs never share a file. Every file is written
//! under a temporary name and renamed into place, so a QEMU that is still reading an older image
//! keeps its copy.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::args::Firmware;
use crate::{Error, manifest, programs};

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

/// Builds the kernel and returns the path of the ELF file that goes on the disk: cargo's,
/// rewritten without debug sections (`strip`) as `axolotl-kernel.boot` beside it.
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
    let elf = std::fs::read(&path)
        .map_err(|e| Error::Failed(format!("cannot read {}: {e}", path.display())))?;
    let stripped = crate::strip::without_debug(&elf)
        .map_err(|why| Error::Failed(format!("the kernel {}: {why}", path.display())))?;
    let boot = path.with_extension("boot");
    write_atomically(&boot, &stripped)?;
    Ok(boot)
}

/// `system.toml` at the workspace root: the manifest used when none is given.
pub fn default_manifest() -> PathBuf {
    workspace_root().join("system.toml")
}

/// How a manifest file is named in messages: relative to the workspace root when inside it.
pub fn manifest_display(path: &Path) -> String {
    let root = workspace_root();
    let shown = path.strip_prefix(&root).unwrap_or(path);
    shown.display().to_string()
}

/// The processes of a boot: the boot module table and the programs it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The validated manifest.
    pub manifest: manifest::SystemManifest,
    /// Its boot module table (the ramdisk module `manifest`).
    pub table: String,
    /// (binary name, ELF bytes) of every distinct binary it names.
    pub programs: Vec<(String, Vec<u8>)>,
}

/// Reads and validates the manifest at `path` against the user programs `known`, without building
/// anything. Errors name the file.
pub fn load_manifest(
    path: &Path,
    known: &[programs::Program],
) -> Result<manifest::SystemManifest, Error> {
    let shown = manifest_display(path);
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Failed(format!("cannot read the manifest {shown}: {e}")))?;
    let names: Vec<&str> = known.iter().map(|p| p.binary.as_str()).collect();
    manifest::parse(&text, &shown, &names).map_err(|e| Error::Failed(e.to_string()))
}

/// Validates the manifest at `path`, builds the user programs it names and returns what the
/// ramdisk needs.
pub fn payload(path: &Path) -> Result<Payload, Error> {
    let known = programs::discover(&workspace_root())?;
    let manifest = load_manifest(path, &known)?;
    let programs = programs::build(&manifest.binaries(), &known)?;
    let table = manifest.table(&manifest_display(path));
    Ok(Payload {
        manifest,
        table,
        programs,
    })
}

/// The modules of the boot ramdisk, in archive order: `cmdline`, then (with a payload)
/// `manifest` and the programs.
pub fn ramdisk_modules(cmdline: &str, payload: Option<&Payload>) -> Vec<(String, Vec<u8>)> {
    let mut modules = vec![("cmdline".to_string(), cmdline.as_bytes().to_vec())];
    if let Some(p) = payload {
        modules.push(("manifest".to_string(), p.table.as_bytes().to_vec()));
        modules.extend(p.programs.iter().cloned());
    }
    modules
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

/// Makes the images for `firmwares` in `dir`: the ramdisk `dir/ramdisk.axrd` holding `modules`
/// (see [`ramdisk_modules`]), then `dir/axolotl-bios.img` and/or `dir/axolotl-uefi.img`. Returns
/// the image paths in order.
pub fn make_images(
    kernel: &Path,
    dir: &Path,
    modules: &[(String, Vec<u8>)],
    firmwares: &[Firmware],
) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Failed(format!("cannot create {}: {e}", dir.display())))?;
    let ramdisk = dir.join("ramdisk.axrd");
    write_atomically(&ramdisk, &ramdisk_bytes(modules)?)?;
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

/// The folder of the images of a boot with `cmdline` and the manifest at `manifest`: `out_dir()`
/// itself for the default command line and manifest (the images of `build`), else a folder of its
/// own, `run-HASH` (see [`run_dir_name`]). `manifest_given` is whether the user named the manifest.
pub fn image_dir(cmdline: &str, manifest: &Path, manifest_given: bool) -> PathBuf {
    if cmdline == crate::args::DEFAULT_CMDLINE && !manifest_given {
        out_dir()
    } else {
        let key = format!("{cmdline}\n{}", manifest.display());
        out_dir().join(run_dir_name(&key))
    }
}

/// Builds what `source` asks for (user programs, kernel) and makes its one image, as `run` would
/// make it, in [`image_dir`]. Returns the image's path. For `image` and `flash`.
pub fn image_of(source: &crate::args::ImageSource) -> Result<PathBuf, Error> {
    let manifest = source.manifest.clone().unwrap_or_else(default_manifest);
    let payload = payload(&manifest)?;
    let kernel = build_kernel(source.release)?;
    let cmdline = source.cmdline();
    let dir = image_dir(&cmdline, &manifest, source.manifest.is_some());
    eprintln!("making the {} image...", firmware_name(source.firmware));
    let modules = ramdisk_modules(&cmdline, Some(&payload));
    Ok(make_images(&kernel, &dir, &modules, &[source.firmware])?.remove(0))
}

/// `BIOS` or `UEFI`.
pub fn firmware_name(firmware: Firmware) -> &'static str {
    match firmware {
        Firmware::Bios => "BIOS",
        Firmware::Uefi => "UEFI",
    }
}

/// Copies the file `from` to `to` through a temporary file beside `to` and a rename, so a reader
/// of `to` sees the old file or the new one, never half of one. `to` must be a regular file or
/// not exist: a device or a folder is refused (devices are written by `flash`).
pub fn copy_atomically(from: &Path, to: &Path) -> Result<(), Error> {
    if let Ok(m) = std::fs::metadata(to)
        && !m.is_file()
    {
        use std::os::unix::fs::FileTypeExt;
        let what = if m.file_type().is_block_device() {
            "is a block device (write devices with 'cargo xtask flash DEVICE')"
        } else if m.is_dir() {
            "is a folder (give a file name)"
        } else {
            "is not a regular file"
        };
        return Err(Error::Failed(format!("{} {what}", to.display())));
    }
    if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(Error::Failed(format!(
            "cannot write {}: the folder {} does not exist",
            to.display(),
            parent.display()
        )));
    }
    let tmp = temp_beside(to);
    std::fs::copy(from, &tmp)
        .and_then(|_| std::fs::rename(&tmp, to))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::Failed(format!("cannot write {}: {e}", to.display()))
        })
}

/// A size for people: `512 B`, `4.0 KiB`, `10.5 MiB`, `14.9 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A folder name for a run with a non-default command line or manifest: `run-` and a hash of
/// `key` (the line and the manifest's path), so equal runs share their images and different ones
/// never collide.
pub fn run_dir_name(key: &str) -> String {
    // FNV-1a: stable across Rust versions, unlike std's hasher.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
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
        let bytes = ramdisk_bytes(&ramdisk_modules("log=debug test=kernel", None)).unwrap();
        let disk = Ramdisk::parse(&bytes).unwrap();
        assert_eq!(disk.get("cmdline"), Some(&b"log=debug test=kernel"[..]));
        assert_eq!(disk.len(), 1);
    }

    #[test]
    fn ramdisk_holds_the_table_and_the_programs() {
        let m = manifest::parse(
            "[process.sh]\nbinary = \"shell\"\n[process.t]\nbinary = \"testproc\"\n",
            "m.toml",
            &["shell", "testproc"],
        )
        .unwrap();
        let payload = Payload {
            table: m.table("m.toml"),
            manifest: m,
            programs: vec![
                ("shell".to_string(), b"\x7fELF shell".to_vec()),
                ("testproc".to_string(), b"\x7fELF testproc".to_vec()),
            ],
        };
        let bytes = ramdisk_bytes(&ramdisk_modules("log=info", Some(&payload))).unwrap();
        let disk = Ramdisk::parse(&bytes).unwrap();
        let names: Vec<&str> = disk.modules().map(|m| m.name).collect();
        assert_eq!(names, ["cmdline", "manifest", "shell", "testproc"]);
        let table = std::str::from_utf8(disk.get("manifest").unwrap()).unwrap();
        assert_eq!(table, payload.table);
        let k = klib::manifest::Manifest::parse(table).unwrap();
        assert_eq!(k.processes().count(), 2);
        // Every binary the table names is in the ramdisk.
        for p in k.processes() {
            assert!(disk.get(p.binary).is_some(), "{} missing", p.binary);
        }
        assert_eq!(disk.get("testproc"), Some(&b"\x7fELF testproc"[..]));
    }

    #[test]
    fn manifests_are_shown_relative_to_the_root() {
        assert_eq!(manifest_display(&default_manifest()), "system.toml");
        assert_eq!(manifest_display(Path::new("/x/y.toml")), "/x/y.toml");
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
    fn image_dirs() {
        let m = default_manifest();
        assert_eq!(image_dir("log=info", &m, false), out_dir());
        // Naming the default manifest still gets a folder of its own, as `run` does.
        assert_ne!(image_dir("log=info", &m, true), out_dir());
        let debug = image_dir("log=info log=debug", &m, false);
        assert!(debug.starts_with(out_dir()) && debug != out_dir());
        assert_eq!(debug, image_dir("log=info log=debug", &m, false));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(4096), "4.0 KiB");
        assert_eq!(human_size(10_978_304), "10.5 MiB");
        assert_eq!(human_size(16_008_609_792), "14.9 GiB");
        assert_eq!(human_size(3 << 40), "3.0 TiB");
    }

    #[test]
    fn image_copies_refuse_devices_and_missing_folders() {
        let dir = std::env::temp_dir().join(format!("xtask-copy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (from, to) = (dir.join("a.img"), dir.join("b.img"));
        std::fs::write(&from, b"image").unwrap();
        copy_atomically(&from, &to).unwrap();
        std::fs::write(&from, b"image 2").unwrap();
        copy_atomically(&from, &to).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"image 2");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            2,
            "no temporary left"
        );
        let e = copy_atomically(&from, &dir).unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
        let e = copy_atomically(&from, &dir.join("nope/x.img"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        if Path::new("/dev/null").exists() {
            let e = copy_atomically(&from, Path::new("/dev/null"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("not a regular file"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn layout() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(out_dir().ends_with("axolotl"));
        assert_eq!(image_name(Firmware::Uefi), "axolotl-uefi.img");
    }
}
