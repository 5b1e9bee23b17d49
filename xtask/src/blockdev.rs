//! What `flash` must know about a block device before it overwrites it: which whole disk it is,
//! its size, model and removability (sysfs), and whether it or any of its partitions is in use:
//! mounted (`/proc/self/mountinfo`, `/proc/mounts`), the root filesystem, swap (`/proc/swaps`),
//! or held by another block device (device mapper, RAID: `/sys/block/NAME/holders`).
//!
//! The parsers work on text and the decision ([`in_use`]) on parsed values, so all of it is
//! unit-tested on the host without a disk; [`Sysfs`] reads a sysfs tree from any root, so the
//! tests give it a fake one.

use std::path::{Path, PathBuf};

/// A device number, `(major, minor)`.
pub type DevNum = (u32, u32);

/// Parses `MAJOR:MINOR` (sysfs `dev` files, mountinfo's third field).
pub fn parse_dev_num(text: &str) -> Option<DevNum> {
    let (major, minor) = text.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Splits a Linux `st_rdev` into major and minor numbers (glibc's `gnu_dev_major/minor`).
pub fn split_rdev(rdev: u64) -> DevNum {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// Undoes the octal escapes of `/proc/mounts` and mountinfo (`\040` is a space, `\011` a tab,
/// `\012` a newline, `\134` a backslash).
pub fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(value as u8);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The device number of the filesystem (mountinfo only; btrfs and others show an anonymous
    /// `0:N` here, so the source is checked too).
    pub dev: Option<DevNum>,
    /// Where it is mounted.
    pub mount_point: String,
    /// What was mounted: `/dev/sdb1`, `tmpfs`, `/dev/disk/by-uuid/...`.
    pub source: String,
}

/// Parses `/proc/self/mountinfo`:
/// `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS`.
/// Lines that do not have this shape are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dev = parse_dev_num(fields.get(2)?)?;
            let mount_point = unescape_mount_field(fields.get(4)?);
            let dash = fields.iter().position(|f| *f == "-")?;
            let source = unescape_mount_field(fields.get(dash + 2)?);
            Some(Mount {
                dev: Some(dev),
                mount_point,
                source,
            })
        })
        .collect()
}

/// Parses `/proc/mounts`: `SOURCE MOUNTPOINT FSTYPE OPTIONS DUMP PASS`.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let source = unescape_mount_field(fields.next()?);
            let mount_point = unescape_mount_field(fields.next()?);
            Some(Mount {
                dev: None,
                mount_point,
                source,
            })
        })
        .collect()
}

/// Parses `/proc/swaps` (a header line, then `FILENAME TYPE SIZE USED PRIORITY`): the files and
/// devices in use as swap.
pub fn parse_swaps(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(unescape_mount_field)
        .collect()
}

/// A partition of a [`Disk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Kernel name: `sdb1`, `nvme0n1p2`, `loop3p1`.
    pub name: String,
    /// Its device number.
    pub dev: DevNum,
    /// Block devices built on it (`dm-0`, `md127`).
    pub holders: Vec<String>,
}

/// A whole disk as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Kernel name: `sdb`, `mmcblk0`, `loop3`.
    pub name: String,
    /// Its device number.
    pub dev: DevNum,
    /// Size in bytes (`size` counts 512-byte sectors, whatever the real sector size).
    pub size_bytes: u64,
    /// `removable` is 1: a medium that can be taken out (most USB sticks and card readers).
    pub removable: bool,
    /// `ro` is 1: write-protected.
    pub read_only: bool,
    /// Vendor and model (`device/vendor`, `device/model`), when the driver reports them.
    pub model: Option<String>,
    /// For a loop device: the file behind it (`loop/backing_file`).
    pub backing_file: Option<String>,
    /// Connected through USB (its sysfs device path goes through a USB controller).
    pub usb: bool,
    /// Block devices built on the whole disk.
    pub holders: Vec<String>,
    /// Its partitions.
    pub partitions: Vec<Partition>,
}

impl Disk {
    /// A loop device (a file made to look like a disk).
    pub fn is_loop(&self) -> bool {
        self.backing_file.is_some() || self.name.starts_with("loop")
    }

    /// The disk and its partitions: (kernel name, device number).
    fn nodes(&self) -> impl Iterator<Item = (&str, DevNum)> {
        std::iter::once((self.name.as_str(), self.dev))
            .chain(self.partitions.iter().map(|p| (p.name.as_str(), p.dev)))
    }
}

/// What sysfs says a device number is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// A whole disk.
    Disk(Disk),
    /// A partition (`name`) of the disk `disk`.
    Partition {
        /// The partition's kernel name.
        name: String,
        /// The whole disk's kernel name.
        disk: String,
    },
}

/// A sysfs tree: `/sys`, or a fake one in tests.
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Self::at("/sys")
    }
}

impl Sysfs {
    /// The sysfs tree under `root`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Finds the block device `dev` (`ROOT/dev/block/MAJ:MIN`, a link into `ROOT/devices`).
    pub fn locate(&self, dev: DevNum) -> Result<Located, String> {
        let link = self
            .root
            .join("dev/block")
            .join(format!("{}:{}", dev.0, dev.1));
        let dir = std::fs::canonicalize(&link).map_err(|e| {
            format!(
                "the kernel does not list block device {}:{} ({}: {e})",
                dev.0,
                dev.1,
                link.display()
            )
        })?;
        let name = file_name(&dir);
        if dir.join("partition").exists() {
            let disk = dir.parent().map(file_name).unwrap_or_default();
            return Ok(Located::Partition { name, disk });
        }
        self.disk_at(&dir, name, dev).map(Located::Disk)
    }

    fn disk_at(&self, dir: &Path, name: String, dev: DevNum) -> Result<Disk, String> {
        let read = |rel: &str| {
            std::fs::read_to_string(dir.join(rel))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let sectors = read("size")
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| format!("cannot read the size of {name} from {}", dir.display()))?;
        let model = match (read("device/vendor"), read("device/model")) {
            (Some(v), Some(m)) => Some(format!("{v} {m}")),
            (v, m) => m.or(v),
        };
        let mut partitions = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if !p.join("partition").exists() {
                    continue;
                }
                let dev = std::fs::read_to_string(p.join("dev"))
                    .ok()
                    .as_deref()
                    .and_then(parse_dev_num);
                if let Some(dev) = dev {
                    partitions.push(Partition {
                        name: file_name(&p),
                        dev,
                        holders: list_dir(&p.join("holders")),
                    });
                }
            }
        }
        partitions.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Disk {
            usb: dir
                .components()
                .any(|c| c.as_os_str().to_str().is_some_and(|s| s.starts_with("usb"))),
            size_bytes: sectors.saturating_mul(512),
            removable: read("removable").as_deref() == Some("1"),
            read_only: read("ro").as_deref() == Some("1"),
            model,
            backing_file: read("loop/backing_file"),
            holders: list_dir(&dir.join("holders")),
            partitions,
            name,
            dev,
        })
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The names in a folder, sorted; empty when it cannot be read.
fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Why a disk must not be overwritten now. `node` is the disk's or a partition's kernel name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Use {
    /// Holds the running system's root filesystem.
    Root {
        /// The node mounted at `/`.
        node: String,
    },
    /// Mounted somewhere.
    Mounted {
        /// The mounted node.
        node: String,
        /// The mount point.
        at: String,
    },
    /// Swap space.
    Swap {
        /// The swap node.
        node: String,
    },
    /// Another block device is built on it (device mapper: LVM, dm-crypt; md RAID).
    Held {
        /// The node underneath.
        node: String,
        /// The device built on it.
        by: String,
    },
}

impl std::fmt::Display for Use {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Root { node } => write!(f, "/dev/{node} holds the root filesystem /"),
            Self::Mounted { node, at } => write!(f, "/dev/{node} is mounted at {at}"),
            Self::Swap { node } => write!(f, "/dev/{node} is in use as swap"),
            Self::Held { node, by } => write!(
                f,
                "/dev/{node} is in use by {by} (device mapper or RAID: LVM, encryption ...)"
            ),
        }
    }
}

/// Every use of `disk` or one of its partitions: the mounts (from mountinfo's device numbers
/// and from the sources of both tables), swap, holders. `resolve` turns a path such as
/// `/dev/disk/by-label/STICK` into the device number of the block device it names (`None` for
/// anything else). Each use is listed once, in the order found.
pub fn in_use(
    disk: &Disk,
    mounts: &[Mount],
    swaps: &[String],
    resolve: &dyn Fn(&str) -> Option<DevNum>,
) -> Vec<Use> {
    let node_of = |dev: Option<DevNum>, source: &str| -> Option<String> {
        let by_dev = dev.and_then(|d| disk.nodes().find(|(_, n)| *n == d));
        let by_name = source
            .strip_prefix("/dev/")
            .and_then(|s| disk.nodes().find(|(name, _)| *name == s));
        let by_path = || {
            source
                .starts_with('/')
                .then(|| resolve(source))
                .flatten()
                .and_then(|d| disk.nodes().find(|(_, n)| *n == d))
        };
        by_dev
            .or(by_name)
            .or_else(by_path)
            .map(|(name, _)| name.to_string())
    };
    let mut uses = Vec::new();
    let mut add = |u: Use| {
        if !uses.contains(&u) {
            uses.push(u);
        }
    };
    for m in mounts {
        if let Some(node) = node_of(m.dev, &m.source) {
            if m.mount_point == "/" {
                add(Use::Root { node });
            } else {
                add(Use::Mounted {
                    node,
                    at: m.mount_point.clone(),
                });
            }
        }
    }
    for s in swaps {
        if let Some(node) = node_of(None, s) {
            add(Use::Swap { node });
        }
    }
    for by in &disk.holders {
        add(Use::Held {
            node: disk.name.clone(),
            by: by.clone(),
        });
    }
    for p in &disk.partitions {
        for by in &p.holders {
            add(Use::Held {
                node: p.name.clone(),
                by: by.clone(),
            });
        }
    }
    uses
}

/// The device number of the block device at `path` (following links), if it is one.
pub fn block_dev_num(path: &Path) -> Option<DevNum> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(path).ok()?;
    m.file_type()
        .is_block_device()
        .then(|| split_rdev(m.rdev()))
}

/// The uses of `disk` on this machine (see [`in_use`]): reads `/proc/self/mountinfo`,
/// `/proc/mounts` and `/proc/swaps`. A table that cannot be read is an error: without it, "not
/// in use" could not be known.
pub fn uses_on_this_machine(disk: &Disk) -> Result<Vec<Use>, String> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read {p} to check that the device is not in use: {e}"))
    };
    let mut mounts = parse_mountinfo(&read("/proc/self/mountinfo")?);
    mounts.extend(parse_mounts(&read("/proc/mounts")?));
    // No swap table means no swap support at all.
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    Ok(in_use(disk, &mounts, &parse_swaps(&swaps), &|p| {
        block_dev_num(Path::new(p))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw
23 22 0:21 / /proc rw,relatime shared:12 - proc proc rw
40 22 8:17 / /media/me/MY\\040STICK rw,nosuid,nodev shared:300 - vfat /dev/sdb1 rw,fmask=0022
41 22 0:45 / /home rw,relatime shared:30 - btrfs /dev/mapper/crypt rw,subvol=/home
bad line
";

    const MOUNTS: &str = "\
/dev/sda2 / ext4 rw,relatime 0 0
proc /proc proc rw 0 0
/dev/sdb1 /media/me/MY\\040STICK vfat rw 0 0
/dev/mapper/crypt /home btrfs rw 0 0
";

    fn disk(name: &str, dev: DevNum, parts: &[(&str, DevNum)]) -> Disk {
        Disk {
            name: name.to_string(),
            dev,
            size_bytes: 16 << 30,
            removable: true,
            read_only: false,
            model: None,
            backing_file: None,
            usb: true,
            holders: Vec::new(),
            partitions: parts
                .iter()
                .map(|(n, d)| Partition {
                    name: n.to_string(),
                    dev: *d,
                    holders: Vec::new(),
                })
                .collect(),
        }
    }

    fn no_resolve(_: &str) -> Option<DevNum> {
        None
    }

    fn all_mounts() -> Vec<Mount> {
        let mut m = parse_mountinfo(MOUNTINFO);
        m.extend(parse_mounts(MOUNTS));
        m
    }

    #[test]
    fn dev_numbers() {
        assert_eq!(parse_dev_num("8:17\n"), Some((8, 17)));
        assert_eq!(parse_dev_num("259:0"), Some((259, 0)));
        assert_eq!(parse_dev_num("8"), None);
        assert_eq!(parse_dev_num("a:b"), None);
        assert_eq!(split_rdev(0x811), (8, 17));
        assert_eq!(split_rdev(0x700), (7, 0));
        // Large numbers use the high bits (makedev(259, 300)).
        let rdev = (259u64 & 0xfff) << 8 | (300 & 0xff) | ((300u64 & !0xff) << 12);
        assert_eq!(split_rdev(rdev), (259, 300));
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape_mount_field("MY\\040STICK"), "MY STICK");
        assert_eq!(unescape_mount_field("a\\011b\\134c"), "a\tb\\c");
        assert_eq!(unescape_mount_field("trailing\\04"), "trailing\\04");
        assert_eq!(unescape_mount_field("\\999"), "\\999");
    }

    #[test]
    fn mountinfo_lines() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 4, "the bad line is skipped");
        assert_eq!(
            m[2],
            Mount {
                dev: Some((8, 17)),
                mount_point: "/media/me/MY STICK".into(),
                source: "/dev/sdb1".into()
            }
        );
        // Optional fields before the dash are skipped.
        let odd = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 propagate_from:2 - ext3 /dev/root rw";
        assert_eq!(parse_mountinfo(odd)[0].source, "/dev/root");
        assert_eq!(parse_mountinfo(odd)[0].mount_point, "/mnt2");
    }

    #[test]
    fn mounts_and_swaps() {
        let m = parse_mounts(MOUNTS);
        assert_eq!(m.len(), 4);
        assert_eq!(
            (m[2].source.as_str(), m[2].mount_point.as_str(), m[2].dev),
            ("/dev/sdb1", "/media/me/MY STICK", None)
        );
        let swaps = "Filename\tType\tSize\tUsed\tPriority\n/dev/sdc2 partition 1024 0 -2\n\
                     /swap\\040file file 10 0 -3\n";
        assert_eq!(parse_swaps(swaps), ["/dev/sdc2", "/swap file"]);
        assert!(parse_swaps("Filename Type Size Used Priority\n").is_empty());
    }

    #[test]
    fn a_mounted_partition_makes_the_disk_in_use() {
        let sdb = disk("sdb", (8, 16), &[("sdb1", (8, 17)), ("sdb2", (8, 18))]);
        let uses = in_use(&sdb, &all_mounts(), &[], &no_resolve);
        assert_eq!(
            uses,
            [Use::Mounted {
                node: "sdb1".into(),
                at: "/media/me/MY STICK".into()
            }],
            "found by number and by name, listed once"
        );
        assert_eq!(
            uses[0].to_string(),
            "/dev/sdb1 is mounted at /media/me/MY STICK"
        );
        // Only mountinfo (by number) or only /proc/mounts (by name) is enough.
        assert_eq!(
            in_use(&sdb, &parse_mountinfo(MOUNTINFO), &[], &no_resolve).len(),
            1
        );
        assert_eq!(
            in_use(&sdb, &parse_mounts(MOUNTS), &[], &no_resolve).len(),
            1
        );
    }

    #[test]
    fn the_root_disk_is_recognised() {
        let sda = disk("sda", (8, 0), &[("sda1", (8, 1)), ("sda2", (8, 2))]);
        let uses = in_use(&sda, &all_mounts(), &[], &no_resolve);
        assert_eq!(
            uses,
            [Use::Root {
                node: "sda2".into()
            }]
        );
        assert_eq!(uses[0].to_string(), "/dev/sda2 holds the root filesystem /");
    }

    #[test]
    fn a_whole_disk_mount_counts() {
        let loop0 = disk("loop0", (7, 0), &[]);
        let m = parse_mountinfo("42 27 7:0 / /tmp/x rw,relatime - ext2 /dev/loop0 rw\n");
        assert_eq!(
            in_use(&loop0, &m, &[], &no_resolve),
            [Use::Mounted {
                node: "loop0".into(),
                at: "/tmp/x".into()
            }]
        );
        let loop1 = disk("loop1", (7, 1), &[]);
        assert!(in_use(&loop1, &m, &[], &no_resolve).is_empty());
    }

    #[test]
    fn sources_are_resolved_when_numbers_do_not_match() {
        // btrfs: mountinfo shows an anonymous device 0:45; the source is a mapper link.
        let dm = disk("dm-0", (253, 0), &[]);
        let resolve = |p: &str| (p == "/dev/mapper/crypt").then_some((253, 0));
        assert_eq!(
            in_use(&dm, &all_mounts(), &[], &resolve),
            [Use::Mounted {
                node: "dm-0".into(),
                at: "/home".into()
            }]
        );
        assert!(in_use(&dm, &all_mounts(), &[], &no_resolve).is_empty());
        // Pseudo sources ("proc", "tmpfs") are never resolved.
        let asked = std::cell::RefCell::new(Vec::new());
        let spy = |p: &str| {
            asked.borrow_mut().push(p.to_string());
            None
        };
        in_use(&dm, &all_mounts(), &[], &spy);
        assert!(asked.borrow().iter().all(|p| p.starts_with('/')));
    }

    #[test]
    fn swap_and_holders() {
        let mut sdc = disk("sdc", (8, 32), &[("sdc1", (8, 33)), ("sdc2", (8, 34))]);
        sdc.partitions[0].holders = vec!["dm-3".into()];
        let uses = in_use(&sdc, &[], &["/dev/sdc2".to_string()], &no_resolve);
        assert_eq!(
            uses,
            [
                Use::Swap {
                    node: "sdc2".into()
                },
                Use::Held {
                    node: "sdc1".into(),
                    by: "dm-3".into()
                }
            ]
        );
        assert!(uses[1].to_string().contains("in use by dm-3"));
        let mut md = disk("sdd", (8, 48), &[]);
        md.holders = vec!["md127".into()];
        assert_eq!(in_use(&md, &[], &[], &no_resolve).len(), 1);
    }

    #[test]
    fn other_disks_are_free() {
        let sde = disk("sde", (8, 64), &[("sde1", (8, 65))]);
        assert!(in_use(&sde, &all_mounts(), &["/dev/sdc2".into()], &no_resolve).is_empty());
        // A name that merely starts like ours is not ours.
        let sd = disk("sd", (8, 99), &[]);
        assert!(in_use(&sd, &all_mounts(), &[], &no_resolve).is_empty());
    }

    /// Builds a fake sysfs: a USB stick `sdb` (8:16) with partition `sdb1` (8:17), and a loop
    /// device `loop3` (7:3).
    fn fake_sysfs() -> (PathBuf, Sysfs) {
        let root = std::env::temp_dir().join(format!(
            "xtask-sysfs-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        let write = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let sdb =
            "devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb";
        write(&format!("{sdb}/size"), "30031872\n");
        write(&format!("{sdb}/removable"), "1\n");
        write(&format!("{sdb}/ro"), "0\n");
        write(&format!("{sdb}/dev"), "8:16\n");
        write(&format!("{sdb}/device/vendor"), "SanDisk \n");
        write(&format!("{sdb}/device/model"), "Cruzer Blade    \n");
        write(&format!("{sdb}/sdb1/partition"), "1\n");
        write(&format!("{sdb}/sdb1/dev"), "8:17\n");
        std::fs::create_dir_all(root.join(format!("{sdb}/holders"))).unwrap();
        std::fs::create_dir_all(root.join(format!("{sdb}/sdb1/holders/dm-0"))).unwrap();
        let loop3 = "devices/virtual/block/loop3";
        write(&format!("{loop3}/size"), "131072\n");
        write(&format!("{loop3}/removable"), "0\n");
        write(&format!("{loop3}/ro"), "1\n");
        write(&format!("{loop3}/loop/backing_file"), "/tmp/disk.img\n");
        std::fs::create_dir_all(root.join("dev/block")).unwrap();
        let link = |num: &str, target: &str| {
            std::os::unix::fs::symlink(format!("../../{target}"), root.join("dev/block").join(num))
                .unwrap();
        };
        link("8:16", sdb);
        link("8:17", &format!("{sdb}/sdb1"));
        link("7:3", loop3);
        (root.clone(), Sysfs::at(root))
    }

    #[test]
    fn sysfs_describes_disks_and_partitions() {
        let (root, sys) = fake_sysfs();
        let Ok(Located::Disk(sdb)) = sys.locate((8, 16)) else {
            panic!("{:?}", sys.locate((8, 16)))
        };
        assert_eq!(sdb.name, "sdb");
        assert_eq!(sdb.size_bytes, 30_031_872 * 512);
        assert!(sdb.removable && sdb.usb && !sdb.read_only && !sdb.is_loop());
        assert_eq!(sdb.model.as_deref(), Some("SanDisk Cruzer Blade"));
        assert_eq!(
            sdb.partitions,
            [Partition {
                name: "sdb1".into(),
                dev: (8, 17),
                holders: vec!["dm-0".into()]
            }]
        );
        assert_eq!(
            sys.locate((8, 17)),
            Ok(Located::Partition {
                name: "sdb1".into(),
                disk: "sdb".into()
            })
        );
        let Ok(Located::Disk(l)) = sys.locate((7, 3)) else {
            panic!()
        };
        assert!(l.is_loop() && l.read_only && !l.removable && !l.usb);
        assert_eq!(l.backing_file.as_deref(), Some("/tmp/disk.img"));
        assert_eq!((l.size_bytes, l.model.clone()), (64 << 20, None));
        assert!(
            sys.locate((8, 99))
                .unwrap_err()
                .contains("does not list block device 8:99")
        );
        std::fs::remove_dir_all(root).unwrap();
    }
}
