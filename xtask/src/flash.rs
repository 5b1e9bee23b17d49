//! `cargo xtask flash DEVICE`: writes the image `cargo xtask image` would make to a block device,
//! with every check that keeps it from overwriting the wrong disk.
//!
//! In order:
//! 1. DEVICE (links followed, e.g. `/dev/disk/by-id/usb-...`) must be a block device, a whole
//!    disk (not a partition), writable, not empty, and neither it nor any of its partitions may be
//!    in use: mounted, the root filesystem, swap, or under device mapper or RAID (`blockdev`).
//! 2. Without `--yes` a terminal must be there to ask on; otherwise nothing is built (exit 2).
//! 3. The image is built (`images::image_of`) and must fit on the device.
//! 4. The device is described (size, model or backing file, removable or not); a non-removable
//!    disk gets a loud warning. Without `--yes` the user must type `yes`.
//! 5. The image is written in 1 MiB chunks through a descriptor opened with `O_EXCL`, which the
//!    kernel refuses for a device that got mounted since step 1; a progress bar shows
//!    bytes/total and percent; then `fsync`.
//! 6. The device is read back (with `O_DIRECT` when it allows, so the medium is read and not the
//!    page cache) and compared; a mismatch reports its first offset.
//!
//! The last line on stdout is `flash: device=/dev/NAME bytes=N firmware=bios|uefi
//! verified=direct|cached image=PATH`. Exit status: 0 written and verified, 1 refused or failed,
//! 2 bad usage (including a missing `--yes` without a terminal).

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Error;
use crate::args::FlashArgs;
use crate::blockdev::{self, Disk, Located, Sysfs};
use crate::images::{self, human_size};

/// Size of each write and read.
pub const CHUNK: usize = 1 << 20;
/// `O_EXCL` (Linux, x86-64): on a block device, an exclusive open that fails with `EBUSY` while
/// it is mounted or otherwise claimed by the kernel.
const O_EXCL: i32 = 0o200;
/// `O_DIRECT` (Linux, x86-64): reads that bypass the page cache.
const O_DIRECT: i32 = 0o40000;
/// Alignment of `O_DIRECT` buffers, offsets and lengths (a multiple of every logical block
/// size).
const DIRECT_ALIGN: usize = 4096;
/// `EBUSY`.
const EBUSY: i32 = 16;
/// `EINVAL`.
const EINVAL: i32 = 22;
/// Width of the progress bar, in characters.
const BAR_WIDTH: usize = 30;

/// The device to write, checked (step 1).
#[derive(Debug)]
pub struct Target {
    /// The path given on the command line.
    pub given: PathBuf,
    /// `/dev/NAME` of the whole disk (what links such as `/dev/disk/by-id/...` lead to).
    pub path: PathBuf,
    /// What sysfs says about it.
    pub disk: Disk,
}

/// `cargo xtask flash`.
pub fn flash(a: &FlashArgs) -> Result<u8, Error> {
    let target = check_device(&a.device, &Sysfs::default())?;
    let dev = target.path.display().to_string();
    if !a.yes && !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "refusing to write {dev} without confirmation: there is no terminal to ask on; add \
             --yes to write it anyway"
        )));
    }
    let image_path = images::image_of(&a.source)?;
    let image = std::fs::read(&image_path)
        .map_err(|e| Error::Failed(format!("cannot read {}: {e}", image_path.display())))?;
    let fw = images::firmware_name(a.source.firmware);
    eprint!("{}", describe(&target, &image_path, image.len() as u64, fw));
    if image.len() as u64 > target.disk.size_bytes {
        return Err(Error::Failed(format!(
            "the image ({}) is larger than {dev} ({}); nothing written",
            human_size(image.len() as u64),
            human_size(target.disk.size_bytes)
        )));
    }
    if let Some(warning) = removable_warning(&target) {
        eprint!("{warning}");
    }
    if !a.yes && !confirm(&target)? {
        return Err(Error::Failed(format!(
            "not confirmed: nothing written to {dev}"
        )));
    }
    let mut device = open_exclusive(&target.path)?;
    let live = std::io::stderr().is_terminal();
    write_image(
        &image,
        &mut device,
        &mut Progress::new("writing", &image, live),
    )
    .map_err(|e| Error::Failed(format!("writing {dev} failed: {e}")))?;
    eprintln!("syncing {dev} (waiting for the device to store everything)...");
    device
        .sync_all()
        .map_err(|e| Error::Failed(format!("syncing {dev} failed: {e}")))?;
    drop(device);
    let direct = verify_device(&target.path, &image, live)?;
    let how = if direct {
        ""
    } else {
        " (read back through the page cache: the device refuses O_DIRECT)"
    };
    eprintln!(
        "{dev}: wrote and verified {} ({} bytes) of the {fw} image{how}",
        human_size(image.len() as u64),
        image.len(),
    );
    println!(
        "flash: device={dev} bytes={} firmware={} verified={} image={}",
        image.len(),
        fw.to_ascii_lowercase(),
        if direct { "direct" } else { "cached" },
        image_path.display()
    );
    Ok(0)
}

/// Step 1: what `given` is, and whether it may be overwritten.
pub fn check_device(given: &Path, sys: &Sysfs) -> Result<Target, Error> {
    let shown = given.display();
    let meta = std::fs::metadata(given).map_err(|e| {
        Error::Failed(format!(
            "cannot use {shown}: {e} (list the disks with 'lsblk -d -o NAME,SIZE,MODEL,TRAN,RM')"
        ))
    })?;
    if !meta.file_type().is_block_device() {
        let what = if meta.is_file() {
            "a regular file (to write an image file, use 'cargo xtask image --out PATH')"
        } else if meta.is_dir() {
            "a folder"
        } else {
            "not a disk (a character device or special file)"
        };
        return Err(Error::Failed(format!(
            "refusing {shown}: it is not a block device but {what}"
        )));
    }
    let dev = blockdev::split_rdev(meta.rdev());
    let disk = match sys.locate(dev).map_err(Error::Failed)? {
        Located::Disk(d) => d,
        Located::Partition { name, disk } => {
            return Err(Error::Failed(format!(
                "refusing {shown}: it is the partition {name} of /dev/{disk}; an image is a whole \
                 disk, so write /dev/{disk} instead"
            )));
        }
    };
    let path = PathBuf::from("/dev").join(&disk.name);
    if disk.read_only {
        return Err(Error::Failed(format!(
            "refusing {shown}: the kernel marks /dev/{} read-only (a write-protect switch?)",
            disk.name
        )));
    }
    if disk.size_bytes == 0 {
        return Err(Error::Failed(format!(
            "refusing {shown}: /dev/{} has size 0 (no medium in the reader?)",
            disk.name
        )));
    }
    let uses = blockdev::uses_on_this_machine(&disk).map_err(Error::Failed)?;
    if let Some(why) = refusal_for_uses(&path, &uses) {
        return Err(Error::Failed(why));
    }
    Ok(Target {
        given: given.to_path_buf(),
        path,
        disk,
    })
}

/// The one-line refusal for a device in use, or `None` when it is free.
pub fn refusal_for_uses(path: &Path, uses: &[blockdev::Use]) -> Option<String> {
    if uses.is_empty() {
        return None;
    }
    let list: Vec<String> = uses.iter().map(|u| u.to_string()).collect();
    let root = uses.iter().any(|u| matches!(u, blockdev::Use::Root { .. }));
    let hint = if root {
        "this is the disk of the running system"
    } else {
        "unmount it first (umount), or pick another device"
    };
    Some(format!(
        "refusing {}: it is in use: {}; {hint}",
        path.display(),
        list.join(", ")
    ))
}

/// The description shown before writing.
pub fn describe(t: &Target, image: &Path, image_len: u64, firmware: &str) -> String {
    let d = &t.disk;
    let mut s = String::new();
    let given = if t.given == t.path {
        String::new()
    } else {
        format!(" (from {})", t.given.display())
    };
    s.push_str(&format!("device:    {}{given}\n", t.path.display()));
    if let Some(file) = &d.backing_file {
        s.push_str(&format!("backed by: {file} (loop device)\n"));
    }
    if let Some(model) = &d.model {
        s.push_str(&format!("model:     {model}\n"));
    }
    s.push_str(&format!(
        "size:      {} ({} bytes)\n",
        human_size(d.size_bytes),
        d.size_bytes
    ));
    let bus = if d.usb { ", USB" } else { "" };
    let removable = if d.removable { "yes" } else { "no" };
    s.push_str(&format!("removable: {removable}{bus}\n"));
    if !d.partitions.is_empty() {
        let names: Vec<&str> = d.partitions.iter().map(|p| p.name.as_str()).collect();
        s.push_str(&format!(
            "partitions: {} (all will be destroyed)\n",
            names.join(", ")
        ));
    }
    s.push_str(&format!(
        "image:     {} ({firmware}, {}, {image_len} bytes)\n",
        image.display(),
        human_size(image_len)
    ));
    s
}

/// The loud warning for a disk that does not say it is removable (loop devices are files and
/// get none).
pub fn removable_warning(t: &Target) -> Option<String> {
    if t.disk.removable || t.disk.is_loop() {
        return None;
    }
    let usb = if t.disk.usb {
        "It is connected by USB (some USB sticks and disks say so), but check it is the right one."
    } else {
        "It may be an internal disk of this computer."
    };
    let line = "!".repeat(78);
    Some(format!(
        "{line}\n!! WARNING: {} is NOT a removable device. {usb}\n!! Everything on it will be \
         destroyed.\n{line}\n",
        t.path.display()
    ))
}

/// Asks on the terminal; true when the user typed `yes`.
fn confirm(t: &Target) -> Result<bool, Error> {
    let what = match (&t.disk.model, &t.disk.backing_file) {
        (Some(model), _) => model.clone(),
        (None, Some(file)) => format!("the loop device of {file}"),
        (None, None) => "no model name".to_string(),
    };
    eprint!(
        "Everything on {} ({}, {what}) will be overwritten. Type 'yes' to continue: ",
        t.path.display(),
        human_size(t.disk.size_bytes)
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Error::Failed(format!("cannot read the answer: {e}")))?;
    Ok(is_yes(&answer))
}

/// Whether an answer to the confirmation is `yes` (exactly, around whitespace).
pub fn is_yes(answer: &str) -> bool {
    answer.trim() == "yes"
}

/// Opens the device for writing, exclusively: the kernel refuses while anything has it mounted or
/// claimed.
fn open_exclusive(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .write(true)
        .custom_flags(O_EXCL)
        .open(path)
        .map_err(|e| {
            let why = if e.raw_os_error() == Some(EBUSY) {
                "it is busy (mounted, or claimed by the kernel, since it was checked)".to_string()
            } else {
                e.to_string()
            };
            Error::Failed(format!("cannot open {} for writing: {why}", path.display()))
        })
}

/// Writes `image` from the start of `out` in [`CHUNK`]s, reporting progress.
pub fn write_image(
    image: &[u8],
    out: &mut impl Write,
    progress: &mut Progress,
) -> std::io::Result<()> {
    let mut done = 0;
    for chunk in image.chunks(CHUNK) {
        out.write_all(chunk)?;
        done += chunk.len();
        progress.update(done as u64);
    }
    out.flush()?;
    progress.finish();
    Ok(())
}

/// Where the device first differs from the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The byte at `offset` reads back as `found` instead of `wrote`.
    Byte {
        /// Offset from the start of the device.
        offset: u64,
        /// The image's byte.
        wrote: u8,
        /// The device's byte.
        found: u8,
    },
    /// The device ended at `at` bytes, before the image did.
    Short {
        /// Bytes read before the end.
        at: u64,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Byte {
                offset,
                wrote,
                found,
            } => write!(
                f,
                "first mismatch at offset {offset} ({offset:#x}): wrote {wrote:#04x}, read back \
                 {found:#04x}"
            ),
            Self::Short { at } => write!(f, "the device ended after {at} bytes"),
        }
    }
}

/// The first index where `a` and `b` differ (over the shorter length).
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

/// Reads the device back from `input` (positioned at its start) into `buf` (at least [`CHUNK`]
/// bytes; aligned for `O_DIRECT`, and each read asks for a multiple of [`DIRECT_ALIGN`] bytes)
/// and compares it with `image`: `Ok(Err(mismatch))` when it differs.
pub fn verify(
    image: &[u8],
    input: &mut impl Read,
    buf: &mut [u8],
    progress: &mut Progress,
) -> std::io::Result<Result<(), Mismatch>> {
    let mut offset = 0usize;
    while offset < image.len() {
        let want = (image.len() - offset).min(CHUNK);
        let ask = want.next_multiple_of(DIRECT_ALIGN).min(buf.len());
        let mut got = 0;
        while got < want {
            match input.read(&mut buf[got..ask]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let n = got.min(want);
        let expected = &image[offset..offset + n];
        if let Some(i) = first_difference(expected, &buf[..n]) {
            return Ok(Err(Mismatch::Byte {
                offset: (offset + i) as u64,
                wrote: expected[i],
                found: buf[i],
            }));
        }
        if n < want {
            return Ok(Err(Mismatch::Short {
                at: (offset + n) as u64,
            }));
        }
        offset += n;
        progress.update(offset as u64);
    }
    progress.finish();
    Ok(Ok(()))
}

/// A buffer of `len` bytes whose start is aligned to `align` (for `O_DIRECT`), carved out of a
/// larger vector: no `unsafe`.
fn aligned_buffer(storage: &mut Vec<u8>, len: usize, align: usize) -> &mut [u8] {
    storage.clear();
    storage.resize(len + align, 0);
    let start = storage.as_ptr().align_offset(align).min(align);
    &mut storage[start..start + len]
}

/// Step 6: reads the device back and compares. Returns whether it was read with `O_DIRECT`
/// (from the medium, not the page cache).
fn verify_device(path: &Path, image: &[u8], live: bool) -> Result<bool, Error> {
    let dev = path.display();
    let (mut input, direct) = match OpenOptions::new()
        .read(true)
        .custom_flags(O_DIRECT)
        .open(path)
    {
        Ok(f) => (f, true),
        Err(e) if e.raw_os_error() == Some(EINVAL) => {
            let f = File::open(path)
                .map_err(|e| Error::Failed(format!("cannot open {dev} to verify: {e}")))?;
            (f, false)
        }
        Err(e) => return Err(Error::Failed(format!("cannot open {dev} to verify: {e}"))),
    };
    let mut storage = Vec::new();
    let buf = aligned_buffer(&mut storage, CHUNK, DIRECT_ALIGN);
    let mut progress = Progress::new("verifying", image, live);
    match verify(image, &mut input, buf, &mut progress) {
        Ok(Ok(())) => Ok(direct),
        Ok(Err(m)) => Err(Error::Failed(format!(
            "verifying {dev} failed: {m}; the device does not hold the image (a bad or fake \
             stick?)"
        ))),
        Err(e) => Err(Error::Failed(format!("reading {dev} back failed: {e}"))),
    }
}

/// The progress of a write or a read-back, on stderr: redrawn in place on a terminal (at most
/// every 100 ms), otherwise one line per quarter so logs stay short.
pub struct Progress {
    label: &'static str,
    total: u64,
    live: bool,
    last_draw: Option<Instant>,
    quarters_shown: u64,
}

impl Progress {
    /// Progress through `data`, labelled `writing` or `verifying`.
    pub fn new(label: &'static str, data: &[u8], live: bool) -> Self {
        Self {
            label,
            total: data.len() as u64,
            live,
            last_draw: None,
            quarters_shown: 0,
        }
    }

    /// A progress that shows nothing.
    #[cfg(test)]
    pub fn silent() -> Self {
        Self {
            label: "",
            total: 0,
            live: false,
            last_draw: None,
            quarters_shown: u64::MAX,
        }
    }

    /// `done` bytes are through.
    pub fn update(&mut self, done: u64) {
        if self.live {
            let due = self
                .last_draw
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
            if due || done >= self.total {
                // \x1b[K clears what a longer earlier line left behind.
                eprint!("\r{}\x1b[K", progress_line(self.label, done, self.total));
                self.last_draw = Some(Instant::now());
            }
        } else if self.quarters_shown != u64::MAX {
            let quarters = (done.min(self.total) * 4)
                .checked_div(self.total)
                .unwrap_or(4);
            if quarters > self.quarters_shown {
                self.quarters_shown = quarters;
                eprintln!("{}", progress_line(self.label, done, self.total));
            }
        }
    }

    /// Ends the bar's line.
    pub fn finish(&mut self) {
        if self.live && self.last_draw.is_some() {
            eprintln!();
            self.last_draw = None;
        }
    }
}

/// `writing   [###############...............]  5.2 MiB / 10.5 MiB   50%`.
pub fn progress_line(label: &str, done: u64, total: u64) -> String {
    let done = done.min(total);
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    let filled = (done * BAR_WIDTH as u64)
        .checked_div(total)
        .map_or(BAR_WIDTH, |f| f as usize);
    format!(
        "{label:<9} [{}{}] {} / {} {percent:>3}%",
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH - filled),
        human_size(done),
        human_size(total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blockdev::{Partition, Use};

    fn target(name: &str, removable: bool) -> Target {
        Target {
            given: PathBuf::from(format!("/dev/{name}")),
            path: PathBuf::from(format!("/dev/{name}")),
            disk: Disk {
                name: name.to_string(),
                dev: (8, 16),
                size_bytes: 16_008_609_792,
                removable,
                read_only: false,
                model: Some("SanDisk Cruzer Blade".into()),
                backing_file: None,
                usb: true,
                holders: Vec::new(),
                partitions: vec![Partition {
                    name: format!("{name}1"),
                    dev: (8, 17),
                    holders: Vec::new(),
                }],
            },
        }
    }

    #[test]
    fn progress_lines() {
        assert_eq!(
            progress_line("writing", 0, 10 << 20),
            "writing   [..............................] 0 B / 10.0 MiB   0%"
        );
        assert_eq!(
            progress_line("writing", 5 << 20, 10 << 20),
            "writing   [###############...............] 5.0 MiB / 10.0 MiB  50%"
        );
        assert_eq!(
            progress_line("verifying", 10 << 20, 10 << 20),
            "verifying [##############################] 10.0 MiB / 10.0 MiB 100%"
        );
        // Never past the end, never a division by zero.
        assert!(progress_line("writing", 11, 10).ends_with("100%"));
        assert!(progress_line("writing", 0, 0).ends_with("100%"));
        assert!(progress_line("writing", 1, 3).ends_with(" 33%"));
    }

    #[test]
    fn confirmation_needs_the_word() {
        assert!(is_yes("yes\n"));
        assert!(is_yes("  yes \r\n"));
        for no in ["y\n", "YES\n", "yes please\n", "", "\n", "no\n"] {
            assert!(!is_yes(no), "{no:?}");
        }
    }

    #[test]
    fn descriptions() {
        let t = target("sdb", true);
        let text = describe(
            &t,
            Path::new("target/axolotl/axolotl-bios.img"),
            10_978_304,
            "BIOS",
        );
        for needle in [
            "device:    /dev/sdb\n",
            "model:     SanDisk Cruzer Blade\n",
            "size:      14.9 GiB (16008609792 bytes)\n",
            "removable: yes, USB\n",
            "partitions: sdb1 (all will be destroyed)\n",
            "image:     target/axolotl/axolotl-bios.img (BIOS, 10.5 MiB, 10978304 bytes)\n",
        ] {
            assert!(text.contains(needle), "{needle:?} in\n{text}");
        }
        let mut l = target("loop3", false);
        l.given = "/dev/disk/by-id/x".into();
        l.disk.backing_file = Some("/tmp/disk.img".into());
        l.disk.model = None;
        let text = describe(&l, Path::new("a.img"), 1, "UEFI");
        assert!(
            text.contains("device:    /dev/loop3 (from /dev/disk/by-id/x)\n"),
            "{text}"
        );
        assert!(
            text.contains("backed by: /tmp/disk.img (loop device)\n"),
            "{text}"
        );
        assert!(!text.contains("model:"));
    }

    #[test]
    fn only_non_removable_disks_get_the_warning() {
        assert_eq!(removable_warning(&target("sdb", true)), None);
        let w = removable_warning(&target("sda", false)).unwrap();
        assert!(
            w.contains("WARNING: /dev/sda is NOT a removable device"),
            "{w}"
        );
        assert!(w.contains("connected by USB"), "{w}");
        let mut internal = target("nvme0n1", false);
        internal.disk.usb = false;
        let w = removable_warning(&internal).unwrap();
        assert!(w.contains("may be an internal disk"), "{w}");
        let mut l = target("loop0", false);
        l.disk.backing_file = Some("/tmp/x".into());
        assert_eq!(removable_warning(&l), None, "a loop device is a file");
    }

    #[test]
    fn refusals_name_every_use() {
        let p = Path::new("/dev/sdb");
        assert_eq!(refusal_for_uses(p, &[]), None);
        let uses = [
            Use::Mounted {
                node: "sdb1".into(),
                at: "/media/x".into(),
            },
            Use::Swap {
                node: "sdb2".into(),
            },
        ];
        let r = refusal_for_uses(p, &uses).unwrap();
        assert_eq!(
            r,
            "refusing /dev/sdb: it is in use: /dev/sdb1 is mounted at /media/x, /dev/sdb2 is in \
             use as swap; unmount it first (umount), or pick another device"
        );
        let r = refusal_for_uses(
            Path::new("/dev/sda"),
            &[Use::Root {
                node: "sda2".into(),
            }],
        )
        .unwrap();
        assert!(r.contains("holds the root filesystem /; this is the disk of the running system"));
    }

    #[test]
    fn differences() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abc", b"abd"), Some(2));
        assert_eq!(first_difference(b"xbc", b"abc"), Some(0));
        assert_eq!(first_difference(b"ab", b"abc"), None);
    }

    fn image_of_len(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn verify_finds_the_first_mismatch() {
        let image = image_of_len(3 * CHUNK + 1234);
        let mut storage = Vec::new();
        let mut check = |device: &[u8]| {
            let buf = aligned_buffer(&mut storage, CHUNK, DIRECT_ALIGN);
            assert_eq!(buf.as_ptr() as usize % DIRECT_ALIGN, 0);
            verify(&image, &mut &device[..], buf, &mut Progress::silent()).unwrap()
        };
        // The device is larger than the image: the rest does not matter.
        let mut device = image.clone();
        device.extend_from_slice(&[0xee; 5000]);
        assert_eq!(check(&device), Ok(()));
        device[2 * CHUNK + 17] ^= 0x40;
        device[2 * CHUNK + 99] ^= 0x01;
        assert_eq!(
            check(&device),
            Err(Mismatch::Byte {
                offset: (2 * CHUNK + 17) as u64,
                wrote: image[2 * CHUNK + 17],
                found: image[2 * CHUNK + 17] ^ 0x40,
            })
        );
        let short = &image[..CHUNK + 10];
        assert_eq!(
            check(short),
            Err(Mismatch::Short {
                at: (CHUNK + 10) as u64
            })
        );
        let m = Mismatch::Byte {
            offset: 4096,
            wrote: 0xab,
            found: 0,
        };
        assert_eq!(
            m.to_string(),
            "first mismatch at offset 4096 (0x1000): wrote 0xab, read back 0x00"
        );
    }

    /// A reader that hands out at most 1000 bytes per call, as a pipe might.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(1000);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn verify_copes_with_short_reads() {
        let image = image_of_len(CHUNK + 5);
        let mut storage = Vec::new();
        let buf = aligned_buffer(&mut storage, CHUNK, DIRECT_ALIGN);
        let r = verify(&image, &mut Trickle(&image), buf, &mut Progress::silent()).unwrap();
        assert_eq!(r, Ok(()));
    }

    #[test]
    fn write_then_verify_a_file() {
        let path = std::env::temp_dir().join(format!("xtask-flash-{}.img", std::process::id()));
        let image = image_of_len(2 * CHUNK + 512);
        let mut f = File::create(&path).unwrap();
        write_image(&image, &mut f, &mut Progress::silent()).unwrap();
        f.sync_all().unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), image);
        // The read-back path of the real command (O_DIRECT where the filesystem allows it).
        assert_eq!(
            verify_device(&path, &image, false).map(|_| ()).ok(),
            Some(())
        );
        let mut bad = image.clone();
        bad[CHUNK + 3] ^= 1;
        let e = verify_device(&path, &bad, false).unwrap_err().to_string();
        assert!(
            e.contains(&format!("first mismatch at offset {}", CHUNK + 3)),
            "{e}"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn files_and_missing_devices_are_refused() {
        let sys = Sysfs::default();
        let e = check_device(Path::new("/nonexistent/sdz"), &sys)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot use /nonexistent/sdz: "), "{e}");
        let file = std::env::temp_dir().join(format!("xtask-notdev-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        let e = check_device(&file, &sys).unwrap_err().to_string();
        assert!(e.contains("not a block device but a regular file"), "{e}");
        std::fs::remove_file(&file).unwrap();
        let e = check_device(&std::env::temp_dir(), &sys)
            .unwrap_err()
            .to_string();
        assert!(e.contains("but a folder"), "{e}");
        let e = check_device(Path::new("/dev/null"), &sys)
            .unwrap_err()
            .to_string();
        assert!(e.contains("character device"), "{e}");
    }
}
