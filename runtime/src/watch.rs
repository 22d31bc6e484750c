//! Watching the kubepods trees for new cgroups (inotify), so that a new
//! container is registered as soon as its cgroup appears instead of at the
//! next periodic scan: its first exec then usually finds it registered
//! rather than pending.
//!
//! In: the kubepods roots. Out: "something was created", from a
//! non-blocking read. The periodic scan stays the source of truth; this
//! only makes it come sooner. Directories are watched down to the pod
//! level (root, QoS, pod), where the container cgroups are made; a watch
//! on a new QoS or pod directory is added when it appears (a container made
//! before that watch is found by the scan the directory's own event runs).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

/// The deepest watched level below a root: 0 root, 1 QoS or pod, 2 pod.
const DEEPEST: u32 = 2;

/// An inotify instance and its watches.
#[derive(Debug)]
pub struct CgroupWatch {
    fd: OwnedFd,
    /// Watch descriptor to directory and its level below its root.
    watched: HashMap<i32, (PathBuf, u32)>,
}

impl CgroupWatch {
    /// A watch with no directory yet.
    pub fn new() -> std::io::Result<CgroupWatch> {
        let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC)?;
        Ok(CgroupWatch { fd, watched: HashMap::new() })
    }

    /// How many directories are watched.
    pub fn len(&self) -> usize {
        self.watched.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }

    /// Watches `root` and its directories down to the pod level.
    pub fn watch_tree(&mut self, root: &Path) {
        self.watch(root, 0);
    }

    fn watch(&mut self, dir: &Path, level: u32) {
        let flags = WatchFlags::CREATE | WatchFlags::ONLYDIR;
        let Ok(wd) = inotify::add_watch(&self.fd, dir, flags) else { return };
        self.watched.insert(wd, (dir.to_path_buf(), level));
        if level < DEEPEST {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    self.watch(&entry.path(), level + 1);
                }
            }
        }
    }

    /// Reads every pending event without blocking; watches new directories
    /// above the container level. Returns whether a directory was created
    /// (a scan is due).
    pub fn read(&mut self) -> bool {
        let mut created = Vec::new();
        let mut gone = Vec::new();
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = inotify::Reader::new(&self.fd, &mut buf);
        // `next` fails with EAGAIN when nothing is left.
        while let Ok(event) = reader.next() {
            let flags = event.events();
            if flags.contains(ReadFlags::IGNORED) {
                gone.push(event.wd());
            }
            if flags.contains(ReadFlags::CREATE | ReadFlags::ISDIR) {
                let name = event.file_name().map(|n| n.to_string_lossy().into_owned());
                created.push((event.wd(), name));
            }
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                created.push((-1, None));
            }
        }
        for wd in gone {
            self.watched.remove(&wd);
        }
        let any = !created.is_empty();
        for (wd, name) in created {
            let (Some((dir, level)), Some(name)) = (self.watched.get(&wd).cloned(), name) else { continue };
            if level < DEEPEST {
                self.watch(&dir.join(name), level + 1);
            }
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_directories_are_seen_and_watched_down_to_the_pod_level() -> std::io::Result<()> {
        let root = tempfile::tempdir()?;
        std::fs::create_dir_all(root.path().join("burstable"))?;
        let mut watch = CgroupWatch::new()?;
        watch.watch_tree(root.path());
        assert_eq!(watch.len(), 2);
        assert!(!watch.read(), "nothing happened yet");
        std::fs::create_dir(root.path().join("burstable/pod1"))?;
        assert!(watch.read());
        assert_eq!(watch.len(), 3, "the new pod directory is watched");
        std::fs::create_dir(root.path().join("burstable/pod1/container"))?;
        assert!(watch.read(), "a container in the new pod is seen");
        assert_eq!(watch.len(), 3, "container directories are not watched");
        std::fs::write(root.path().join("burstable/file"), b"x")?;
        assert!(!watch.read(), "files are not cgroups");
        Ok(())
    }
}
