//! The plan's picture of the sysroot: one node per *canonical* path, i.e. the path with
//! every symlink that already exists in the sysroot resolved (clamped to the sysroot,
//! as `openat2(RESOLVE_IN_ROOT)` does in pass 2). Two member names that reach the same
//! file (`bin/foo` and `usr/bin/foo` under a usr-merged root) therefore share a node,
//! and "last member wins" and the type rules apply to what will really be on disk.
//!
//! Nodes are interned by (parent node, component): a component is hashed once per
//! member, so a member costs time and memory linear in its name, however deep, and
//! common prefixes are stored once.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{readlinkat, AtFlags};
use nix::sys::stat::{fstatat, SFlag};

use crate::root::Root;

/// No node / no item.
pub(super) const NONE: u32 = u32::MAX;
/// The sysroot itself.
pub(super) const ROOT: u32 = 0;
/// Same bound as the kernel's MAXSYMLINKS.
const MAX_SYMLINKS: usize = 40;
/// Bytes a node costs beyond its name (node, map entry, hash table slack), for the
/// plan's memory budget.
pub(super) const NODE_COST: usize = std::mem::size_of::<Node>() + 48;

/// What the sysroot holds at a node before the unpack (looked up once, lazily).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fs {
    Unknown,
    Missing,
    Dir,
    Symlink,
    Other,
}

/// The type of the latest member at a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Latest {
    None,
    Dir,
    Symlink,
    /// A regular file or a hard link.
    File,
}

pub(super) struct Node {
    pub(super) parent: u32,
    pub(super) name: Box<[u8]>,
    pub(super) depth: u32,
    /// Index of the latest member at this node (`NONE`: no member).
    pub(super) latest: u32,
    pub(super) latest_kind: Latest,
    /// The latest member whose path went through this node as a directory.
    pub(super) traversed_by: u32,
    pub(super) fs: Fs,
    /// Target text of an existing symlink, read once.
    link: Option<Box<[u8]>>,
}

/// Why a path cannot be resolved; the node is where it went wrong.
#[derive(Debug)]
pub(super) enum Conflict {
    /// The latest member at the node is a symlink.
    ThroughSymlink(u32),
    /// The latest member at the node is not a directory.
    NotADirectory(u32),
    /// The sysroot has a non-directory (or a symlink to nothing) at the node.
    Blocked,
    /// More than `MAX_SYMLINKS` existing symlinks on the way.
    Loop(u32),
    /// Looking at the sysroot failed.
    Io(u32, io::Error),
}

pub(super) struct Tree {
    pub(super) nodes: Vec<Node>,
    children: HashMap<Box<[u8]>, u32>,
    /// Scratch key: parent id (4 bytes) then the component.
    key: Vec<u8>,
    /// Bytes charged so far (names and links kept, fixed node costs).
    pub(super) bytes: usize,
    /// The staging directory's name at the top of the sysroot: the plan sees nothing
    /// there (it is moved out of the way of a member of that name before the commit).
    hidden: Box<[u8]>,
    /// The last directory path resolved for a member, its node and the symlinks
    /// followed on the way: the next member usually lies in it or below it, and
    /// resolving again from the root would cost a hash lookup per component (a
    /// member 2,000 directories deep would cost 2,000).
    last: Option<(Vec<u8>, u32, usize)>,
}

impl Tree {
    pub(super) fn new(hidden: &[u8]) -> Tree {
        Tree {
            nodes: vec![Node {
                parent: ROOT,
                name: Box::default(),
                depth: 0,
                latest: NONE,
                latest_kind: Latest::None,
                traversed_by: NONE,
                fs: Fs::Dir,
                link: None,
            }],
            children: HashMap::new(),
            key: Vec::new(),
            bytes: NODE_COST,
            hidden: hidden.into(),
            last: None,
        }
    }

    /// The child `name` of `parent`, created when missing.
    pub(super) fn child(&mut self, parent: u32, name: &[u8]) -> u32 {
        self.key.clear();
        self.key.extend_from_slice(&parent.to_le_bytes());
        self.key.extend_from_slice(name);
        if let Some(&id) = self.children.get(&self.key[..]) {
            return id;
        }
        let id = self.nodes.len() as u32;
        self.children
            .insert(self.key.clone().into_boxed_slice(), id);
        let depth = self.nodes[parent as usize].depth + 1;
        self.nodes.push(Node {
            parent,
            name: name.into(),
            depth,
            latest: NONE,
            latest_kind: Latest::None,
            traversed_by: NONE,
            fs: Fs::Unknown,
            link: None,
        });
        self.bytes += NODE_COST + 2 * name.len() + 4;
        id
    }

    /// The child `name` of `parent` if it exists.
    pub(super) fn lookup(&self, parent: u32, name: &[u8]) -> Option<u32> {
        let mut key = Vec::with_capacity(4 + name.len());
        key.extend_from_slice(&parent.to_le_bytes());
        key.extend_from_slice(name);
        self.children.get(&key[..]).copied()
    }

    /// The canonical path of `id` relative to the sysroot (empty for the root), written
    /// into `out`. Linear in the path's length.
    pub(super) fn path_into(&self, id: u32, out: &mut Vec<u8>) {
        out.clear();
        let mut n = id;
        while n != ROOT {
            let node = &self.nodes[n as usize];
            if !out.is_empty() {
                out.push(b'/');
            }
            out.extend(node.name.iter().rev());
            n = node.parent;
        }
        out.reverse();
    }

    pub(super) fn path(&self, id: u32) -> Vec<u8> {
        let mut out = Vec::new();
        self.path_into(id, &mut out);
        out
    }

    /// What the sysroot has at `id`. Only nodes whose parent is an existing directory
    /// are looked up; every ancestor of such a node is a real directory (symlinks are
    /// resolved into other nodes), so `fstatat` on the canonical path with
    /// `AT_SYMLINK_NOFOLLOW` sees exactly that entry.
    pub(super) fn fs(&mut self, root: &Root, id: u32) -> Result<Fs, Conflict> {
        // Ancestors not looked up yet go first, outermost first; iteratively, since a
        // path can be thousands of components deep. The root is known, so this ends.
        let mut chain = Vec::new();
        let mut n = id;
        while self.nodes[n as usize].fs == Fs::Unknown {
            chain.push(n);
            n = self.nodes[n as usize].parent;
        }
        for &n in chain.iter().rev() {
            self.fs_one(root, n)?;
        }
        Ok(self.nodes[id as usize].fs)
    }

    /// [`Tree::fs`] for a node whose parent is known.
    fn fs_one(&mut self, root: &Root, id: u32) -> Result<Fs, Conflict> {
        let parent = self.nodes[id as usize].parent;
        let hidden = parent == ROOT && self.nodes[id as usize].name == self.hidden;
        if self.nodes[parent as usize].fs != Fs::Dir || hidden {
            self.nodes[id as usize].fs = Fs::Missing;
            return Ok(Fs::Missing);
        }
        let path = self.path(id);
        let fd = root.fd().as_raw_fd();
        let state = match fstatat(Some(fd), &path[..], AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
                SFlag::S_IFDIR => Fs::Dir,
                SFlag::S_IFLNK => {
                    let target =
                        readlinkat(Some(fd), &path[..]).map_err(|e| Conflict::Io(id, e.into()))?;
                    let target: Box<[u8]> = target.as_bytes().into();
                    self.bytes += target.len();
                    self.nodes[id as usize].link = Some(target);
                    Fs::Symlink
                }
                _ => Fs::Other,
            },
            Err(Errno::ENOENT) => Fs::Missing,
            Err(e) => return Err(Conflict::Io(id, e.into())),
        };
        self.nodes[id as usize].fs = state;
        Ok(state)
    }

    /// Resolves the directory `path` (normalised member path, or a part of one) to its
    /// canonical node, creating nodes on the way. Existing symlinks are followed inside
    /// the sysroot and must end at an existing directory; a component whose latest
    /// member is a symlink or a non-directory is a conflict. With `mark`, each node
    /// passed through records `item` as its latest user (checked again at the end,
    /// when the final member of every node is known), and the walk starts from the
    /// last path resolved with `mark` when that is a prefix of `path`: the walk is a
    /// function of the node reached and the symlinks counted at that point, and what
    /// could change its result there (a non-directory member on that path) drops the
    /// remembered path ([`Tree::member_at`]). The nodes of the shared prefix keep the
    /// earlier member as their user, which is just as much a member going through them.
    pub(super) fn resolve_dir(
        &mut self,
        root: &Root,
        path: &[u8],
        item: u32,
        mark: bool,
    ) -> Result<u32, Conflict> {
        let (start, skip, links) = match &self.last {
            Some((p, node, links))
                if mark
                    && !p.is_empty()
                    && path.starts_with(p)
                    && (path.len() == p.len() || path[p.len()] == b'/') =>
            {
                (*node, p.len(), *links)
            }
            _ => (ROOT, 0, 0),
        };
        let (cur, links) = self.walk(root, start, &path[skip..], links, item, mark)?;
        if mark {
            let mut p = self.last.take().map(|l| l.0).unwrap_or_default();
            p.clear();
            p.extend_from_slice(path);
            self.last = Some((p, cur, links));
        }
        Ok(cur)
    }

    /// A member other than a directory now ends at `node`: forget the remembered path
    /// if `node` is on it.
    pub(super) fn member_at(&mut self, node: u32) {
        let Some((_, last, _)) = &self.last else {
            return;
        };
        let depth = self.nodes[node as usize].depth;
        let mut n = *last;
        while self.nodes[n as usize].depth > depth {
            n = self.nodes[n as usize].parent;
        }
        if n == node {
            self.last = None;
        }
    }

    /// [`Tree::resolve_dir`] from node `start` with `links` symlinks already followed;
    /// returns the node reached and the symlinks followed in all.
    fn walk(
        &mut self,
        root: &Root,
        start: u32,
        path: &[u8],
        mut links: usize,
        item: u32,
        mark: bool,
    ) -> Result<(u32, usize), Conflict> {
        // Frames of component text still to walk: the member path, then the targets of
        // symlinks met on the way (the node of the link, to check where it ended).
        let mut frames: Vec<(Box<[u8]>, usize, u32)> = vec![(path.into(), 0, NONE)];
        let mut cur = start;
        let mut comp = Vec::new();
        while let Some((text, pos, link_node)) = frames.last_mut() {
            if *pos >= text.len() {
                let link_node = *link_node;
                frames.pop();
                if link_node != NONE && self.fs(root, cur)? != Fs::Dir {
                    return Err(Conflict::Blocked);
                }
                continue;
            }
            let rest = &text[*pos..];
            let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
            comp.clear();
            comp.extend_from_slice(&rest[..end]);
            *pos += end + 1;
            match &comp[..] {
                b"" | b"." => continue,
                b".." => {
                    cur = self.nodes[cur as usize].parent;
                    continue;
                }
                _ => {}
            }
            let n = self.child(cur, &comp);
            match self.nodes[n as usize].latest_kind {
                Latest::Symlink => return Err(Conflict::ThroughSymlink(n)),
                Latest::File => return Err(Conflict::NotADirectory(n)),
                Latest::Dir | Latest::None => {}
            }
            if mark {
                self.nodes[n as usize].traversed_by = item;
            }
            match self.fs(root, n)? {
                Fs::Missing | Fs::Dir => cur = n,
                Fs::Other | Fs::Unknown => return Err(Conflict::Blocked),
                Fs::Symlink => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(Conflict::Loop(n));
                    }
                    let target = self.nodes[n as usize].link.clone().unwrap_or_default();
                    cur = if target.first() == Some(&b'/') {
                        ROOT
                    } else {
                        self.nodes[n as usize].parent
                    };
                    frames.push((target, 0, n));
                }
            }
        }
        Ok((cur, links))
    }
}
