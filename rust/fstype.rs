//! Which filesystem a path is on (`statfs(2)` `f_type`), and whether inotify can be trusted there.
//!
//! On network and cluster filesystems (NFS, SMB, FUSE mounts such as sshfs or virtiofs, AFS,
//! Ceph, 9p, Lustre, GPFS, GFS2, OCFS2, ...) inotify only reports changes made through this host's
//! kernel: another host's (or pod's) writes are never seen, so the loop polls there instead.

use std::path::Path;

use crate::error::{CoreError, Result};

/// Known `f_type` magic numbers (from `linux/magic.h` and the filesystems' sources) and names.
const KNOWN: &[(u32, &str)] = &[
    (0xEF53, "ext4"), // ext2, ext3 and ext4 share the magic
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x0102_1994, "tmpfs"),
    (0x8584_58F6, "ramfs"),
    (0x794C_7630, "overlay"),
    (0x2FC1_2FC1, "zfs"),
    (0xF2F5_2010, "f2fs"),
    (0x7371_7368, "squashfs"),
    (0x4D44, "vfat"),
    (0x2011_BAB0, "exfat"),
    (0x5346_544E, "ntfs"),
    (0x9660, "iso9660"),
    (0x9FA0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x1CD1, "devpts"),
    (0x6367_7270, "cgroup2"),
    (0x6969, "nfs"),
    (0xFF53_4D42, "cifs"),
    (0xFE53_4D42, "smb2"),
    (0x517B, "smb"),
    (0x6573_5546, "fuse"), // fuse and fuseblk (sshfs, s3fs, glusterfs, virtiofs, ...)
    (0x5346_414F, "afs"),
    (0x6B41_4653, "afs"), // kAFS
    (0x00C3_6400, "ceph"),
    (0x0102_1997, "9p"),
    (0x0BD0_0BD0, "lustre"),
    (0x4750_4653, "gpfs"),
    (0x0116_1970, "gfs2"),
    (0x7461_636F, "ocfs2"),
    (0x1983_0326, "beegfs"),
    (0x1366_1366, "orangefs"),
    (0x7375_7245, "coda"),
    (0x564C, "ncpfs"),
    (0x786F_4256, "vboxsf"),
];

/// Filesystems where inotify does not see other hosts' writes.
const NETWORK: &[&str] = &[
    "nfs", "cifs", "smb2", "smb", "fuse", "afs", "ceph", "9p", "lustre", "gpfs", "gfs2", "ocfs2",
    "beegfs", "orangefs", "coda", "ncpfs", "vboxsf",
];

/// The name of a `statfs` `f_type` (`0x<hex>` when unknown).
pub fn name_of(magic: u32) -> String {
    KNOWN
        .iter()
        .find(|(m, _)| *m == magic)
        .map_or_else(|| format!("0x{magic:x}"), |(_, n)| (*n).to_owned())
}

/// Whether a filesystem type name (as [`fs_type`] returns it) is a network or cluster one.
pub fn is_network_name(name: &str) -> bool {
    NETWORK.contains(&name)
}

/// The filesystem type of `path` (follows symlinks, like `statfs(2)`).
pub fn fs_type(path: &Path) -> Result<String> {
    let st = rustix::fs::statfs(path).map_err(|e| CoreError::rx(e, "statfs", path))?;
    // f_type is a signed word whose width differs between ABIs; the magic is its low 32 bits.
    #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
    let magic = st.f_type as u32;
    Ok(name_of(magic))
}

/// Whether `path` is on a filesystem where inotify misses other hosts' writes.
pub fn is_network_fs(path: &Path) -> Result<bool> {
    fs_type(path).map(|n| is_network_name(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name_of(0xEF53), "ext4");
        assert_eq!(name_of(0x6969), "nfs");
        assert_eq!(name_of(0xFE53_4D42), "smb2");
        assert_eq!(name_of(0x1234_5678), "0x12345678");
        assert!(is_network_name("nfs") && is_network_name("fuse") && is_network_name("cifs"));
        assert!(
            !is_network_name("ext4") && !is_network_name("tmpfs") && !is_network_name("overlay")
        );
        let mut magics: Vec<u32> = KNOWN.iter().map(|(m, _)| *m).collect();
        magics.sort_unstable();
        magics.dedup();
        assert_eq!(magics.len(), KNOWN.len(), "a magic listed twice");
        for n in NETWORK {
            assert!(KNOWN.iter().any(|(_, k)| k == n), "{n} has no magic");
        }
    }

    #[test]
    fn local_paths() {
        let d = tempfile::tempdir().unwrap();
        let t = fs_type(d.path()).unwrap();
        assert!(!t.is_empty());
        assert_eq!(fs_type(Path::new("/proc/self")).unwrap(), "proc");
        assert!(!is_network_fs(Path::new("/proc")).unwrap());
        let e = fs_type(&d.path().join("missing")).unwrap_err();
        assert_eq!(e.errno, libc::ENOENT);
        assert!(e.to_string().contains("missing"));
    }
}
