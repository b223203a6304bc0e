//! `powercut-fs`: a FUSE filesystem that forgets, at a power cut, everything not yet synced.
//!
//! ```text
//! powercut-fs --durable DIR --live DIR --mount DIR
//! ```
//!
//! Files live in `--live`, where every write lands at once, as in a page cache. `--durable`
//! is the disk: a file's bytes reach it only when the file is `fsync`ed (or `fdatasync`ed).
//! Names are durable at once: a create, rename or unlink is made in both trees, as a
//! journalling filesystem would keep its metadata. The file then holds, on the disk, only what
//! was synced into it.
//!
//! A power cut is: SIGKILL this process (and whatever used the mount), `umount` the mount point.
//! The next start copies `--durable` over `--live`, so the mount shows exactly what a disk
//! would hold after losing power: every synced byte, no unsynced one.
//!
//! Test tooling: one thread, paths as inode names, no hard links, no extended attributes.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};

const TTL: Duration = Duration::from_secs(0);

#[derive(Default)]
struct Tables {
    /// Inode → path relative to the roots ("" is the root).
    paths: HashMap<u64, PathBuf>,
    inodes: HashMap<PathBuf, u64>,
    next_ino: u64,
    /// Open files, on the live tree.
    handles: HashMap<u64, (u64, File)>,
    next_fh: u64,
    /// Per inode: byte ranges written since its last sync (start → end).
    dirty: HashMap<u64, BTreeMap<u64, u64>>,
}

struct PowercutFs {
    live: PathBuf,
    durable: PathBuf,
    t: Mutex<Tables>,
}

fn errno(e: &std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc_eio()))
}

const fn libc_eio() -> i32 {
    5
}

fn kind_of(m: &std::fs::Metadata) -> FileType {
    FileType::from_std(m.file_type()).unwrap_or(FileType::RegularFile)
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH
    }
}

impl PowercutFs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.t.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path_of(&self, ino: INodeNo) -> Option<PathBuf> {
        self.lock().paths.get(&ino.0).cloned()
    }

    fn ino_for(&self, rel: &Path) -> u64 {
        let mut t = self.lock();
        if let Some(i) = t.inodes.get(rel) {
            return *i;
        }
        t.next_ino += 1;
        let i = t.next_ino;
        t.paths.insert(i, rel.to_path_buf());
        t.inodes.insert(rel.to_path_buf(), i);
        i
    }

    fn attr(&self, ino: u64, rel: &Path) -> std::io::Result<FileAttr> {
        let m = std::fs::symlink_metadata(self.live.join(rel))?;
        Ok(FileAttr {
            ino: INodeNo(ino),
            size: m.len(),
            blocks: m.blocks(),
            atime: time(m.atime(), m.atime_nsec()),
            mtime: time(m.mtime(), m.mtime_nsec()),
            ctime: time(m.ctime(), m.ctime_nsec()),
            crtime: UNIX_EPOCH,
            kind: kind_of(&m),
            perm: (m.mode() & 0o7777) as u16,
            nlink: m.nlink() as u32,
            uid: m.uid(),
            gid: m.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Option<PathBuf> {
        self.path_of(parent).map(|p| p.join(name))
    }

    /// Makes inode `ino`'s synced state its live state: dirty ranges copied to the durable
    /// file, whose length becomes the live one.
    fn sync(&self, ino: u64) -> std::io::Result<()> {
        let mut t = self.lock();
        let Some(rel) = t.paths.get(&ino).cloned() else {
            return Ok(());
        };
        let ranges = t.dirty.remove(&ino).unwrap_or_default();
        drop(t);
        let copied = self.copy_ranges(&rel, &ranges);
        if copied.is_err() {
            // Not durable after all: the next fsync must copy these again.
            for (&start, &end) in &ranges {
                self.mark(ino, start, end);
            }
        }
        copied
    }

    /// Copies `ranges` of the live file `rel` to its durable copy, and the live length.
    fn copy_ranges(&self, rel: &Path, ranges: &BTreeMap<u64, u64>) -> std::io::Result<()> {
        let live = match File::open(self.live.join(rel)) {
            Ok(f) => f,
            // Unlinked while open: nothing of it survives anyway.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let len = live.metadata()?.len();
        let disk = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.durable.join(rel))?;
        let mut buf = Vec::new();
        for (&start, &end) in ranges {
            let end = end.min(len);
            if start >= end {
                continue;
            }
            buf.resize((end - start) as usize, 0);
            live.read_exact_at(&mut buf, start)?;
            disk.write_all_at(&buf, start)?;
        }
        disk.set_len(len)?;
        disk.sync_data()
    }

    fn mark(&self, ino: u64, start: u64, end: u64) {
        let mut t = self.lock();
        let ranges = t.dirty.entry(ino).or_default();
        // Merge with what overlaps or touches.
        let (mut s, mut e) = (start, end);
        let overlapping: Vec<(u64, u64)> = ranges
            .range(..=e)
            .filter(|&(&rs, &re)| re >= s && rs <= e)
            .map(|(&rs, &re)| (rs, re))
            .collect();
        for (rs, re) in overlapping {
            ranges.remove(&rs);
            s = s.min(rs);
            e = e.max(re);
        }
        ranges.insert(s, e);
    }

    /// A length change (truncate, extend): the whole file's synced length follows at the
    /// next sync; bytes past the old length are dirty.
    fn mark_len(&self, ino: u64, old: u64, new: u64) {
        if new > old {
            self.mark(ino, old, new);
        } else {
            // Shrinking: the cut-off bytes are dirty too, so that if the file grows again
            // before the sync, the durable copy gets what the live file then holds there
            // (zeros) rather than the old bytes.
            self.mark(ino, new, old.max(new + 1));
        }
    }

    fn rename_paths(&self, from: &Path, to: &Path) {
        let mut t = self.lock();
        if let Some(old) = t.inodes.remove(to) {
            t.paths.remove(&old);
        }
        let moved: Vec<(PathBuf, u64)> = t
            .inodes
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        for (p, i) in moved {
            let rest = p
                .strip_prefix(from)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let np = if rest.as_os_str().is_empty() {
                to.to_path_buf()
            } else {
                to.join(rest)
            };
            t.inodes.remove(&p);
            t.inodes.insert(np.clone(), i);
            t.paths.insert(i, np);
        }
    }
}

impl Filesystem for PowercutFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(rel) = self.child(parent, name) else {
            return reply.error(Errno::ENOENT);
        };
        if std::fs::symlink_metadata(self.live.join(&rel)).is_err() {
            return reply.error(Errno::ENOENT);
        }
        let ino = self.ino_for(&rel);
        match self.attr(ino, &rel) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let Some(rel) = self.path_of(ino) else {
            return reply.error(Errno::ENOENT);
        };
        match self.attr(ino.0, &rel) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let Some(rel) = self.path_of(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let path = self.live.join(&rel);
        let r = (|| -> std::io::Result<()> {
            if let Some(m) = mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m & 0o7777))?;
                let _ = std::fs::set_permissions(
                    self.durable.join(&rel),
                    std::fs::Permissions::from_mode(m & 0o7777),
                );
            }
            if let Some(len) = size {
                let f = OpenOptions::new().write(true).open(&path)?;
                let old = f.metadata()?.len();
                f.set_len(len)?;
                self.mark_len(ino.0, old, len);
            }
            Ok(())
        })();
        match r.and_then(|()| self.attr(ino.0, &rel)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let Some(rel) = self.child(parent, name) else {
            return reply.error(Errno::ENOENT);
        };
        let r = std::fs::create_dir(self.live.join(&rel)).and_then(|()| {
            std::fs::set_permissions(
                self.live.join(&rel),
                std::fs::Permissions::from_mode(mode & 0o7777),
            )?;
            std::fs::create_dir_all(self.durable.join(&rel))
        });
        let ino = self.ino_for(&rel);
        match r.and_then(|()| self.attr(ino, &rel)) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(rel) = self.child(parent, name) else {
            return reply.error(Errno::ENOENT);
        };
        match std::fs::remove_file(self.live.join(&rel)) {
            Ok(()) => {
                let _ = std::fs::remove_file(self.durable.join(&rel));
                let mut t = self.lock();
                if let Some(i) = t.inodes.remove(&rel) {
                    t.paths.remove(&i);
                    t.dirty.remove(&i);
                }
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(rel) = self.child(parent, name) else {
            return reply.error(Errno::ENOENT);
        };
        match std::fs::remove_dir(self.live.join(&rel)) {
            Ok(()) => {
                let _ = std::fs::remove_dir_all(self.durable.join(&rel));
                let mut t = self.lock();
                if let Some(i) = t.inodes.remove(&rel) {
                    t.paths.remove(&i);
                }
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            return reply.error(Errno::EINVAL);
        }
        let (Some(from), Some(to)) = (self.child(parent, name), self.child(newparent, newname))
        else {
            return reply.error(Errno::ENOENT);
        };
        match std::fs::rename(self.live.join(&from), self.live.join(&to)) {
            Ok(()) => {
                let _ = std::fs::rename(self.durable.join(&from), self.durable.join(&to));
                self.rename_paths(&from, &to);
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let Some(rel) = self.path_of(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let acc = flags.0 & 0o3;
        let path = self.live.join(&rel);
        let r = OpenOptions::new()
            .read(acc != 1)
            .write(acc != 0)
            .open(&path)
            .and_then(|f| {
                if flags.0 & 0o1000 != 0 {
                    // O_TRUNC
                    let old = f.metadata()?.len();
                    f.set_len(0)?;
                    self.mark_len(ino.0, old, 0);
                }
                Ok(f)
            });
        match r {
            Ok(f) => {
                let mut t = self.lock();
                t.next_fh += 1;
                let fh = t.next_fh;
                t.handles.insert(fh, (ino.0, f));
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let Some(rel) = self.child(parent, name) else {
            return reply.error(Errno::ENOENT);
        };
        let excl = flags & 0o200 != 0;
        let r = OpenOptions::new()
            .read(true)
            .write(true)
            .create(!excl)
            .create_new(excl)
            .truncate(flags & 0o1000 != 0)
            .mode(mode & 0o7777)
            .open(self.live.join(&rel))
            .and_then(|f| {
                // The name is durable at once; its bytes only when synced.
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(mode & 0o7777)
                    .open(self.durable.join(&rel))?;
                Ok(f)
            });
        let ino = self.ino_for(&rel);
        match r.and_then(|f| Ok((f, self.attr(ino, &rel)?))) {
            Ok((f, a)) => {
                let mut t = self.lock();
                t.next_fh += 1;
                let fh = t.next_fh;
                t.handles.insert(fh, (ino, f));
                reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let t = self.lock();
        let Some((_, f)) = t.handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            match f.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return reply.error(errno(&e)),
            }
        }
        reply.data(&buf[..got]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let r = {
            let t = self.lock();
            let Some((ino, f)) = t.handles.get(&fh.0) else {
                return reply.error(Errno::EBADF);
            };
            f.write_all_at(data, offset).map(|()| *ino)
        };
        match r {
            Ok(ino) => {
                self.mark(ino, offset, offset + data.len() as u64);
                reply.written(data.len() as u32);
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.lock().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.sync(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(rel) = self.path_of(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let entries = match std::fs::read_dir(self.live.join(&rel)) {
            Ok(d) => d,
            Err(e) => return reply.error(errno(&e)),
        };
        let mut all = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        for e in entries.flatten() {
            let name = e.file_name();
            let child = rel.join(&name);
            let kind = e
                .file_type()
                .ok()
                .and_then(FileType::from_std)
                .unwrap_or(FileType::RegularFile);
            all.push((self.ino_for(&child), kind, name));
        }
        for (i, (ino, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Names are durable as soon as they are made.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // Preallocation only matters for size when the mode is 0 (extend).
        if mode != 0 {
            return reply.ok();
        }
        let r = {
            let t = self.lock();
            let Some((_, f)) = t.handles.get(&fh.0) else {
                return reply.error(Errno::EBADF);
            };
            f.metadata().and_then(|m| {
                let old = m.len();
                let new = offset + length;
                if new > old {
                    f.set_len(new)?;
                }
                Ok((old, new.max(old)))
            })
        };
        match r {
            Ok((old, new)) => {
                self.mark_len(ino.0, old, new);
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }
}

/// Copies the tree at `from` to `to` (which must not exist): regular files and directories.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type()?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

fn arg(args: &[String], name: &str) -> Result<PathBuf, String> {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| PathBuf::from(&w[1]))
        .ok_or_else(|| format!("missing {name} DIR"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let parsed = (|| -> Result<(PathBuf, PathBuf, PathBuf), String> {
        Ok((
            arg(&args, "--durable")?,
            arg(&args, "--live")?,
            arg(&args, "--mount")?,
        ))
    })();
    let (durable, live, mount) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("powercut-fs: {e}\nusage: powercut-fs --durable DIR --live DIR --mount DIR");
            std::process::exit(2);
        }
    };
    // After a cut, the live tree is what the disk kept.
    let run = || -> std::io::Result<()> {
        std::fs::create_dir_all(&durable)?;
        if live.exists() {
            std::fs::remove_dir_all(&live)?;
        }
        copy_tree(&durable, &live)?;
        let mut t = Tables {
            next_ino: 1,
            ..Tables::default()
        };
        t.paths.insert(1, PathBuf::new());
        t.inodes.insert(PathBuf::new(), 1);
        let fs = PowercutFs {
            live: live.clone(),
            durable: durable.clone(),
            t: Mutex::new(t),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("powercut".into()),
            MountOption::DefaultPermissions,
        ];
        fuser::mount(fs, &mount, &config)
    };
    if let Err(e) = run() {
        eprintln!("powercut-fs: {e}");
        std::process::exit(1);
    }
}
