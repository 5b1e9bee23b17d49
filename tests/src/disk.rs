//! Scenarios of the disk images users write to real machines: `cargo xtask image` makes a file
//! that boots exactly as written, and `cargo xtask flash` writes it to a block device, verifies
//! it, and refuses the devices it must not touch.
//!
//! The flash scenario never touches a real disk: every device it names is a loop device it
//! attached itself to a file of its own (and checked, through sysfs, to be backed by that file).
//! Guards detach the loop devices, unmount and delete the files on every path, panics included.
//! It needs root and `losetup`, and is skipped with the reason otherwise.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{BootSpec, Harness, ScenarioResult, XtaskRun};

/// Limit of one `cargo xtask image` or `flash` run (it may build the user programs and kernel).
const XTASK_TIMEOUT: Duration = Duration::from_secs(600);
/// The command line the image scenarios pack into their images.
pub const AS_WRITTEN_CMDLINE: &str = "test=exit-after-boot";
/// Virtual CPUs of the image scenarios' boots.
const AS_WRITTEN_SMP: u32 = 2;

pub(crate) fn image_boots_as_written_bios(h: &dyn Harness) -> ScenarioResult {
    image_boots_as_written(h, "image_boots_as_written_bios", false)
}

pub(crate) fn image_boots_as_written_uefi(h: &dyn Harness) -> ScenarioResult {
    image_boots_as_written(h, "image_boots_as_written_uefi", true)
}

/// `cargo xtask image --bios|--uefi --out X --cmdline test=exit-after-boot`, then X booted as it
/// is: the kernel must come up with every CPU and report success.
fn image_boots_as_written(h: &dyn Harness, name: &str, uefi: bool) -> ScenarioResult {
    let dir = h.folder(name)?;
    let out = dir.join("as-written.img");
    let _ = std::fs::remove_file(&out);
    let out_arg = path_arg(&out)?;
    let fw = if uefi { "--uefi" } else { "--bios" };
    let args = [
        "image",
        fw,
        "--release",
        "--cmdline",
        AS_WRITTEN_CMDLINE,
        "--out",
        out_arg,
    ];
    let r = h.xtask(&args, XTASK_TIMEOUT);
    r.expect_status(&args.join(" "), 0)?;
    let len = std::fs::metadata(&out)
        .map_err(|e| format!("'cargo xtask image' succeeded but {out_arg} is missing: {e}"))?
        .len();
    let said = format!("{out_arg}: {len} bytes");
    if !r.stdout.lines().any(|l| l.starts_with(&said)) {
        return Err(format!(
            "'cargo xtask image' did not print its path and size ('{said} ...'); stdout:\n{}",
            r.stdout
        ));
    }
    let mut spec =
        BootSpec::bios(AS_WRITTEN_SMP, AS_WRITTEN_CMDLINE).timeout(Duration::from_secs(90));
    if uefi {
        spec = spec.uefi();
    }
    let b = h.boot_image(name, &out, &spec);
    crate::exited_after_boot(&b, AS_WRITTEN_SMP)?;
    Ok(None)
}

/// A path as a command-line word (every path here is made from the workspace's, so UTF-8).
fn path_arg(p: &Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", p.display()))
}

/// What the flash scenario needs of the host: root, `losetup` and the loop driver.
pub fn loop_devices_available() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1));
    if euid != Some("0") {
        return Err("needs root to attach loop devices".into());
    }
    if find_program("losetup").is_none() {
        return Err("losetup is missing (package util-linux)".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Err("no /dev/loop-control: the kernel has no loop driver".into());
    }
    Ok(())
}

/// `program` in `PATH`, `/usr/sbin` or `/sbin`.
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Name of the flash scenario (and of its folder).
const FLASH: &str = "flash_to_loop_device";
/// Size of the scenario's disk.
const DISK_BYTES: u64 = 64 << 20;
/// Size of the disk too small for any image.
const SMALL_BYTES: u64 = 1 << 20;
/// What the scenario's disks hold before anything is written, to see what was.
const FILL: u8 = 0xa5;
const MIB: usize = 1 << 20;

/// As root with `losetup`: flashes a loop device the scenario made and checks the result
/// independently of flash's own verification, then checks the refusals: no confirmation without a
/// terminal, a regular file, a device too small, a mounted device, a device held open
/// exclusively, and (where the host kernel reads partition tables) a partition and a disk whose
/// partition is mounted.
pub(crate) fn flash_to_loop_device(h: &dyn Harness) -> ScenarioResult {
    let dir = h.folder(FLASH)?;
    let mut notes = Vec::new();
    let file = ScratchFile::filled(scratch(&dir, "disk.img"), DISK_BYTES, FILL)?;
    let disk = LoopDevice::attach(&file.path, false)?;
    let dev = path_arg(&disk.path)?;

    // No --yes and no terminal to ask on: refused before anything is built or written.
    let r = h.xtask(&["flash", dev, "--release"], XTASK_TIMEOUT);
    r.expect_status(&format!("flash {dev} (no --yes)"), 2)?;
    expect_says(&r, "add --yes")?;
    expect_filled(&disk.path, 0, MIB as u64, "after the refusal without --yes")?;

    let r = h.xtask(&["flash", dev, "--yes", "--release"], XTASK_TIMEOUT);
    r.expect_status(&format!("flash {dev} --yes"), 0)?;
    let summary = FlashSummary::parse(&r.stdout)?;
    if summary.device != dev {
        return Err(format!("flash says it wrote {}, not {dev}", summary.device));
    }
    check_written(&disk.path, &summary)?;
    notes.push(format!(
        "{} bytes written, verified {}",
        summary.bytes, summary.verified
    ));

    // A regular file is not a device.
    let f = path_arg(&file.path)?;
    let r = h.xtask(&["flash", f, "--yes"], XTASK_TIMEOUT);
    r.expect_status(&format!("flash {f}"), 1)?;
    expect_says(&r, "not a block device")?;

    refuses_too_small(h, &dir)?;
    notes.push(refuses_mounted(h, &dir)?);
    refuses_held(h, &disk)?;
    notes.push(refuses_partitions(h, &dir)?);
    Ok(Some(notes.join("; ")))
}

/// `dir/PID-NAME`: a name no other test run in this workspace uses at the same time.
fn scratch(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{}-{name}", std::process::id()))
}

fn expect_says(r: &XtaskRun, needle: &str) -> Result<(), String> {
    if r.says(needle) {
        Ok(())
    } else {
        Err(format!(
            "the output does not say '{needle}':\nstdout:\n{}stderr:\n{}",
            crate::transcript::tail(&r.stdout, 10),
            crate::transcript::tail(&r.stderr, 10)
        ))
    }
}

/// The machine-readable last line of `flash`:
/// `flash: device=D bytes=N firmware=F verified=direct|cached image=PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashSummary {
    /// The device written.
    pub device: String,
    /// Bytes written.
    pub bytes: u64,
    /// `direct` (read back with O_DIRECT) or `cached`.
    pub verified: String,
    /// The image file written.
    pub image: PathBuf,
}

impl FlashSummary {
    /// Parses the last `flash:` line of `stdout`.
    pub fn parse(stdout: &str) -> Result<Self, String> {
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("flash: "))
            .ok_or_else(|| format!("no 'flash: device=..' line on stdout:\n{stdout}"))?;
        let value = |key: &str| {
            crate::transcript::summary_value(line, "flash:", key)
                .ok_or_else(|| format!("no '{key}=' in '{line}'"))
        };
        // The image path is the rest of the line: it may hold spaces.
        let image = line
            .split_once(" image=")
            .map(|(_, p)| PathBuf::from(p))
            .ok_or_else(|| format!("no 'image=' in '{line}'"))?;
        Ok(Self {
            device: value("device")?.to_string(),
            bytes: value("bytes")?
                .parse()
                .map_err(|_| format!("bytes= is not a number in '{line}'"))?,
            verified: value("verified")?.to_string(),
            image,
        })
    }
}

/// Checks the device on its own: it holds the image file flash names, byte for byte, the boot
/// signature 55 AA ends its first sector, and the first MiB after the image is untouched.
fn check_written(device: &Path, s: &FlashSummary) -> Result<(), String> {
    let image = std::fs::read(&s.image)
        .map_err(|e| format!("cannot read the image {}: {e}", s.image.display()))?;
    if image.len() as u64 != s.bytes {
        return Err(format!(
            "flash says {} bytes but {} has {}",
            s.bytes,
            s.image.display(),
            image.len()
        ));
    }
    let on_disk = read_at(device, 0, image.len())?;
    if let Some(i) = image.iter().zip(&on_disk).position(|(a, b)| a != b) {
        return Err(format!(
            "{} differs from the image at offset {i} although flash verified it",
            device.display()
        ));
    }
    if on_disk.get(510..512) != Some(&[0x55, 0xaa][..]) {
        return Err("the first sector does not end with the boot signature 55 AA".into());
    }
    expect_filled(device, s.bytes, MIB as u64, "after the image")
}

/// Fails unless `len` bytes of `device` from `offset` all still hold [`FILL`].
fn expect_filled(device: &Path, offset: u64, len: u64, when: &str) -> Result<(), String> {
    let bytes = read_at(device, offset, len as usize)?;
    match bytes.iter().position(|b| *b != FILL) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{} was written at offset {} {when}",
            device.display(),
            offset + i as u64
        )),
    }
}

fn read_at(path: &Path, offset: u64, len: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0; len];
    File::open(path)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(offset))?;
            f.read_exact(&mut buf)
        })
        .map_err(|e| format!("cannot read {} at {offset}: {e}", path.display()))?;
    Ok(buf)
}

/// A device smaller than the image: refused after the build, nothing written.
fn refuses_too_small(h: &dyn Harness, dir: &Path) -> Result<(), String> {
    let file = ScratchFile::filled(scratch(dir, "small.img"), SMALL_BYTES, FILL)?;
    let small = LoopDevice::attach(&file.path, false)?;
    let dev = path_arg(&small.path)?;
    let r = h.xtask(&["flash", dev, "--yes", "--release"], XTASK_TIMEOUT);
    r.expect_status(&format!("flash {dev} (1 MiB)"), 1)?;
    expect_says(&r, "is larger than")?;
    expect_filled(&small.path, 0, SMALL_BYTES, "although it is too small")
}

/// A device with a mounted filesystem is refused before anything is built. Needs `mkfs.ext2`
/// and `mount`; without them (or when mounting fails) the note says so and the held-open check
/// ([`refuses_held`]) covers the refusal instead.
fn refuses_mounted(h: &dyn Harness, dir: &Path) -> Result<String, String> {
    let Some(mkfs) = find_program("mkfs.ext2") else {
        return Ok(
            "mkfs.ext2 missing: mount refusal checked only through a device held open".into(),
        );
    };
    let file = ScratchFile::filled(scratch(dir, "mounted.img"), 8 << 20, 0)?;
    run(Command::new(&mkfs).args(["-q", "-F"]).arg(&file.path))?;
    let fs = LoopDevice::attach(&file.path, false)?;
    let mounted = match MountPoint::mount(&fs.path, scratch(dir, "mnt")) {
        Ok(m) => m,
        Err(e) => {
            return Ok(format!(
                "mounting failed ({e}): mount refusal checked only through a device held open"
            ));
        }
    };
    let dev = path_arg(&fs.path)?;
    let r = h.xtask(&["flash", dev, "--yes", "--release"], XTASK_TIMEOUT);
    r.expect_status(&format!("flash {dev} (mounted)"), 1)?;
    expect_says(
        &r,
        &format!("{dev} is mounted at {}", mounted.dir.display()),
    )?;
    // The ext2 magic 0xEF53 at offset 1080 is still there.
    if read_at(&fs.path, 1080, 2)? != [0x53, 0xef] {
        return Err(format!("the mounted filesystem on {dev} was damaged"));
    }
    Ok("mounted device refused".into())
}

/// A device another program holds open exclusively (as the kernel does for a mounted one) is
/// refused when flash opens it, after every earlier check passed.
fn refuses_held(h: &dyn Harness, disk: &LoopDevice) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    const O_EXCL: i32 = 0o200;
    let _held = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_EXCL)
        .open(&disk.path)
        .map_err(|e| format!("cannot hold {} open: {e}", disk.path.display()))?;
    let dev = path_arg(&disk.path)?;
    let r = h.xtask(&["flash", dev, "--yes", "--release"], XTASK_TIMEOUT);
    r.expect_status(&format!("flash {dev} (held open)"), 1)?;
    expect_says(&r, "it is busy")
}

/// With a partition table: flashing the partition is refused, and so is the disk while the
/// partition is mounted. Host kernels without partition table support show no partitions of a
/// loop device; then the note says so (the rule is unit-tested in xtask's `blockdev`).
fn refuses_partitions(h: &dyn Harness, dir: &Path) -> Result<String, String> {
    let file = ScratchFile::filled(scratch(dir, "parted.img"), 16 << 20, 0)?;
    write_mbr(&file.path, 2048, (16 << 20) / 512 - 2048)?;
    let disk = LoopDevice::attach(&file.path, true)?;
    let part = disk.partition(1);
    let appeared = (0..20).any(|_| {
        let there = part.exists();
        if !there {
            std::thread::sleep(Duration::from_millis(100));
        }
        there
    });
    if !appeared {
        return Ok(format!(
            "the host kernel shows no partitions of {} (no partition table support): the \
             partition rules are unit-tested only",
            disk.path.display()
        ));
    }
    let (dev, p) = (path_arg(&disk.path)?, path_arg(&part)?);
    let r = h.xtask(&["flash", p, "--yes"], XTASK_TIMEOUT);
    r.expect_status(&format!("flash {p}"), 1)?;
    expect_says(&r, "is the partition")?;
    let Some(mkfs) = find_program("mkfs.ext2") else {
        return Ok("partition refused; mkfs.ext2 missing for the mounted-partition check".into());
    };
    run(Command::new(&mkfs).args(["-q", "-F"]).arg(&part))?;
    let mounted = match MountPoint::mount(&part, scratch(dir, "mnt-part")) {
        Ok(m) => m,
        Err(e) => return Ok(format!("partition refused; mounting it failed ({e})")),
    };
    let r = h.xtask(&["flash", dev, "--yes", "--release"], XTASK_TIMEOUT);
    r.expect_status(&format!("flash {dev} (partition mounted)"), 1)?;
    expect_says(&r, &format!("{p} is mounted at {}", mounted.dir.display()))?;
    Ok("partition and disk with a mounted partition refused".into())
}

/// An MBR with one Linux partition of `sectors` sectors from sector `start`.
pub fn mbr(start: u32, sectors: u32) -> [u8; 512] {
    let mut sector = [0u8; 512];
    let entry = &mut sector[446..462];
    entry[4] = 0x83;
    entry[8..12].copy_from_slice(&start.to_le_bytes());
    entry[12..16].copy_from_slice(&sectors.to_le_bytes());
    sector[510] = 0x55;
    sector[511] = 0xaa;
    sector
}

fn write_mbr(path: &Path, start: u32, sectors: u64) -> Result<(), String> {
    let sectors = u32::try_from(sectors).map_err(|_| "partition too large".to_string())?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(&mbr(start, sectors)))
        .map_err(|e| format!("cannot write a partition table to {}: {e}", path.display()))
}

/// Runs a host command; `Err` with its stderr when it fails.
fn run(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A file the scenario made; deleted when dropped.
struct ScratchFile {
    path: PathBuf,
}

impl ScratchFile {
    /// A file of `len` bytes of `byte` at `path`.
    fn filled(path: PathBuf, len: u64, byte: u8) -> Result<Self, String> {
        let mut f =
            File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let guard = Self { path };
        let chunk = vec![byte; MIB];
        let mut left = len;
        while left > 0 {
            let n = left.min(MIB as u64) as usize;
            f.write_all(&chunk[..n])
                .map_err(|e| format!("cannot fill {}: {e}", guard.path.display()))?;
            left -= n as u64;
        }
        Ok(guard)
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A loop device the scenario attached to a file of its own; detached when dropped.
struct LoopDevice {
    path: PathBuf,
}

impl LoopDevice {
    /// `losetup [--partscan] --find --show FILE`, then a check through sysfs that the device is
    /// backed by FILE (otherwise it is not ours: it is left alone and the scenario fails).
    fn attach(file: &Path, partscan: bool) -> Result<Self, String> {
        let mut cmd = Command::new(find_program("losetup").unwrap_or("losetup".into()));
        if partscan {
            cmd.arg("--partscan");
        }
        let path = PathBuf::from(run(cmd.args(["--find", "--show"]).arg(file))?);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.starts_with("loop"))
            .ok_or_else(|| format!("losetup printed '{}', not a loop device", path.display()))?;
        let backing = std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file"))
            .unwrap_or_default();
        let ours = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        if Path::new(backing.trim()) != ours {
            return Err(format!(
                "losetup attached {} but sysfs says it is backed by '{}', not {}: left alone",
                path.display(),
                backing.trim(),
                ours.display()
            ));
        }
        Ok(Self { path })
    }

    /// `/dev/loopNpK`.
    fn partition(&self, k: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!("p{k}"));
        p.into()
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let losetup = find_program("losetup").unwrap_or("losetup".into());
        let _ = Command::new(losetup).arg("-d").arg(&self.path).output();
    }
}

/// A filesystem the scenario mounted; unmounted (lazily if it must) when dropped.
struct MountPoint {
    dir: PathBuf,
}

impl MountPoint {
    fn mount(device: &Path, dir: PathBuf) -> Result<Self, String> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        run(Command::new("mount")
            .args(["-t", "ext2"])
            .arg(device)
            .arg(&dir))?;
        Ok(Self { dir })
    }
}

impl Drop for MountPoint {
    fn drop(&mut self) {
        let done = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !done {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use crate::tests::{Fake, find, good_boot, result};

    #[test]
    fn image_scenarios_boot_the_file_they_made() {
        for (name, uefi, flag) in [
            ("image_boots_as_written_bios", false, "--bios"),
            ("image_boots_as_written_uefi", true, "--uefi"),
        ] {
            let s = find(name);
            assert!(!s.host_only && s.requires.is_none());
            let h = good_boot(100);
            assert_eq!((s.run)(&h), Ok(None), "{name}");
            let images = h.images.lock().unwrap().clone();
            assert_eq!(images.len(), 1);
            assert!(images[0].ends_with(format!("{name}/as-written.img")));
            let commands = h.commands.lock().unwrap().clone();
            assert_eq!(
                commands,
                [format!(
                    "image {flag} --release --cmdline test=exit-after-boot --out {}",
                    images[0].display()
                )]
            );
            let seen = h.seen.lock().unwrap();
            assert_eq!(seen[0].0, name);
            assert_eq!((seen[0].1.smp, seen[0].1.uefi), (2, uefi));
        }
    }

    #[test]
    fn image_scenarios_fail_on_a_bad_boot() {
        let s = find("image_boots_as_written_bios");
        let failed = Fake::new(|_| result(Outcome::GuestFailed, "KERNEL PANIC\n", 1));
        assert!(
            (s.run)(&failed)
                .unwrap_err()
                .contains("guest reported failure")
        );
        let wrong = Fake::new(|_| result(Outcome::Passed, "boot: 1 cpus online boot_ms=1\n", 1));
        assert!((s.run)(&wrong).unwrap_err().contains("expected 2"));
    }

    #[test]
    fn failed_commands_are_explained() {
        let r = XtaskRun {
            status: Some(1),
            stdout: String::new(),
            stderr: "building...\nerror: refusing /dev/sdz: it is in use\n".into(),
        };
        let e = r.expect_status("flash /dev/sdz", 0).unwrap_err();
        assert!(e.starts_with("'cargo xtask flash /dev/sdz' ended with exit status 1, expected 0"));
        assert!(e.contains("refusing /dev/sdz"), "{e}");
        assert!(r.says("in use") && !r.says("mounted"));
        let killed = XtaskRun::default();
        assert!(
            killed
                .expect_status("x", 0)
                .unwrap_err()
                .contains("no exit status")
        );
        assert_eq!(r.expect_status("x", 1), Ok(()));
    }

    #[test]
    fn flash_summaries() {
        let out = "noise\nflash: device=/dev/loop3 bytes=7832576 firmware=bios verified=direct \
                   image=/w/target/my dir/axolotl-bios.img\n";
        assert_eq!(
            FlashSummary::parse(out),
            Ok(FlashSummary {
                device: "/dev/loop3".into(),
                bytes: 7_832_576,
                verified: "direct".into(),
                image: "/w/target/my dir/axolotl-bios.img".into(),
            })
        );
        assert!(
            FlashSummary::parse("nothing\n")
                .unwrap_err()
                .contains("no 'flash:")
        );
        let e = FlashSummary::parse("flash: device=/dev/loop3 bytes=x verified=direct image=/i\n")
            .unwrap_err();
        assert!(e.contains("bytes= is not a number"), "{e}");
    }

    #[test]
    fn partition_tables() {
        let s = mbr(2048, 30720);
        assert_eq!(s[446 + 4], 0x83);
        assert_eq!(&s[446 + 8..446 + 12], &2048u32.to_le_bytes());
        assert_eq!(&s[446 + 12..446 + 16], &30720u32.to_le_bytes());
        assert_eq!(&s[510..], &[0x55, 0xaa]);
        assert!(s[462..510].iter().all(|b| *b == 0), "one partition only");
    }

    #[test]
    fn the_flash_scenario_is_host_only_and_guarded() {
        let s = find("flash_to_loop_device");
        assert!(s.host_only);
        // Whatever this host offers, the check answers without touching anything.
        if let Some(Err(why)) = s.requires.map(|r| r()) {
            assert!(!why.is_empty());
        }
    }

    #[test]
    fn scratch_files_go_away() {
        let path = std::env::temp_dir().join(format!("axolotl-scratch-{}", std::process::id()));
        {
            let f = ScratchFile::filled(path.clone(), 3 * MIB as u64 + 5, FILL).unwrap();
            assert_eq!(
                std::fs::metadata(&f.path).unwrap().len(),
                3 * MIB as u64 + 5
            );
            expect_filled(&f.path, 0, 3 * MIB as u64 + 5, "never").unwrap();
        }
        assert!(!path.exists());
    }
}
