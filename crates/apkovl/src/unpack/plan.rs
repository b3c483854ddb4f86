//! Pass 1: read the whole archive without writing and decide what pass 2 will do.
//!
//! Everything the plan keeps is charged against `Limits::max_plan_bytes`: a fixed cost
//! per member and per path node, the names and link targets kept, the member list for
//! apk and the warnings. Skipped members keep no name at all (only a fingerprint of
//! their header), and warnings are capped, so a small archive of many odd members
//! cannot make the plan large.

use std::io::Read;

use super::stage::{Writer, NO_SLOT};
use super::tree::{Conflict, Fs, Latest, Tree, NONE, ROOT};
use super::{Limits, UnpackError};
use crate::archive::{Entry, Kind, TarReader};
use crate::member::{listed_name, normalize, shown, MemberList, NameError};
use crate::root::Root;

/// Warnings kept in full; the rest are counted.
const MAX_WARNINGS: usize = 8;

/// What a member points at.
pub(super) enum Target {
    None,
    /// A symlink's target text, verbatim.
    Symlink(Box<[u8]>),
    /// A hard link: the index of the regular-file member it ends at, found once when
    /// the link is read (a link to a link takes that link's file).
    Hard(u32),
}

/// One archive member as pass 1 accepted it.
pub(super) struct Item {
    /// The staging entry holding a regular file's data (`NO_SLOT`: none, or removed
    /// because a later member replaced it).
    pub(super) slot: u32,
    pub(super) kind: Kind,
    /// Canonical node (`NONE` for skipped members).
    pub(super) node: u32,
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mtime: i64,
    pub(super) target: Target,
}

const ITEM_COST: usize = std::mem::size_of::<Item>();

/// The verified archive.
pub(super) struct Plan {
    pub(super) items: Vec<Item>,
    pub(super) tree: Tree,
    pub(super) members: MemberList,
    pub(super) warnings: Vec<String>,
    suppressed: u64,
    /// Table lookups made to resolve hard links: one per link, whatever the chains.
    pub(super) link_steps: u64,
    /// Bytes of symlink targets and warnings kept.
    extra: usize,
}

impl Plan {
    /// This member is the last one for its canonical path ("last wins", like tar).
    pub(super) fn is_final(&self, index: usize) -> bool {
        let node = self.items[index].node;
        node != NONE && self.tree.nodes[node as usize].latest == index as u32
    }

    /// Memory charged so far.
    pub(super) fn bytes(&self) -> usize {
        self.tree.bytes + self.items.len() * ITEM_COST + self.members.as_bytes().len() + self.extra
    }

    fn warn(&mut self, message: impl FnOnce() -> String) {
        if self.warnings.len() < MAX_WARNINGS {
            let m = message();
            self.extra += m.len();
            self.warnings.push(m);
        } else {
            self.suppressed += 1;
        }
    }

    fn shown_node(&self, node: u32) -> String {
        shown(&self.tree.path(node))
    }

    fn conflict(&self, c: Conflict, name: &[u8]) -> UnpackError {
        let member = shown(name);
        match c {
            Conflict::ThroughSymlink(n) => UnpackError::ThroughSymlink {
                member,
                symlink: self.shown_node(n),
            },
            Conflict::NotADirectory(n) => UnpackError::NotADirectory {
                member,
                parent: self.shown_node(n),
            },
            Conflict::Blocked => UnpackError::Blocked { member },
            Conflict::Loop(n) => UnpackError::Resolve {
                member,
                path: self.shown_node(n),
                source: nix::errno::Errno::ELOOP.into(),
            },
            Conflict::Io(n, source) => UnpackError::Resolve {
                member,
                path: self.shown_node(n),
                source,
            },
        }
    }
}

/// Reads the whole stream (so every checksum is verified) and checks every rule. The
/// sysroot is only looked at (`fstatat`, `readlinkat`), never written; regular files'
/// data goes to the staging directory of `w` as it is read.
pub(super) fn verify<R: Read>(
    tar: &mut TarReader<R>,
    root: &Root,
    limits: &Limits,
    w: &mut Writer,
) -> Result<Plan, UnpackError> {
    let mut plan = Plan {
        items: Vec::new(),
        tree: Tree::new(&w.dir.name),
        members: MemberList::default(),
        warnings: Vec::new(),
        suppressed: 0,
        link_steps: 0,
        extra: 0,
    };
    let mut warned_absolute = false;
    while let Some(entry) = tar.next_entry()? {
        if plan.items.len() as u64 >= limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        let index = plan.items.len() as u32;
        let (node, target) = match entry.kind {
            Kind::Skipped(what) => {
                plan.warn(|| format!("skipped {what} {}", shown(&entry.name)));
                (NONE, Target::None)
            }
            _ => {
                let norm = normalize(&entry.name, limits.max_path_len, limits.max_component_len)
                    .map_err(|reason| UnpackError::Name {
                        member: shown(&entry.name),
                        reason,
                    })?;
                if norm.was_absolute && !warned_absolute {
                    warned_absolute = true;
                    plan.warn(|| "removing leading '/' from member names".to_owned());
                }
                let node = if norm.path.is_root() {
                    if entry.kind != Kind::Dir {
                        return Err(UnpackError::Name {
                            member: shown(&entry.name),
                            reason: NameError::Empty,
                        });
                    }
                    ROOT
                } else {
                    let (parent, last) = norm.path.split_last();
                    let p = plan
                        .tree
                        .resolve_dir(root, parent, index, true)
                        .map_err(|c| plan.conflict(c, &entry.name))?;
                    plan.tree.child(p, last)
                };
                let target = match entry.kind {
                    Kind::Symlink => {
                        check_symlink_target(&entry.link, limits).map_err(|reason| {
                            UnpackError::SymlinkTarget {
                                member: shown(&entry.name),
                                reason,
                            }
                        })?;
                        plan.extra += entry.link.len();
                        Target::Symlink(entry.link.clone().into_boxed_slice())
                    }
                    Kind::HardLink => {
                        Target::Hard(hard_link_target(&mut plan, root, &entry, node, limits)?)
                    }
                    _ => Target::None,
                };
                plan.members.push(listed_name(&entry.name));
                if node != ROOT {
                    let n = &mut plan.tree.nodes[node as usize];
                    let prev = n.latest;
                    n.latest = index;
                    n.latest_kind = match entry.kind {
                        Kind::Dir => Latest::Dir,
                        Kind::Symlink => Latest::Symlink,
                        _ => Latest::File,
                    };
                    if entry.kind != Kind::Dir {
                        plan.tree.member_at(node);
                    }
                    // A file replaced by a later member is never written: free its
                    // space now. A hard link to it rejects the overlay (check_final).
                    if let Some(old) = plan.items.get_mut(prev as usize) {
                        if old.slot != NO_SLOT {
                            w.discard(old.slot);
                            old.slot = NO_SLOT;
                        }
                    }
                }
                (node, target)
            }
        };
        let mut item = Item {
            slot: NO_SLOT,
            kind: entry.kind,
            node,
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            mtime: entry.mtime,
            target,
        };
        if item.kind == Kind::File && node != NONE {
            item.slot = w.file(&item, &entry.name, tar, entry.size)?;
        }
        plan.items.push(item);
        if plan.bytes() > limits.max_plan_bytes {
            return Err(UnpackError::PlanTooLarge {
                limit: limits.max_plan_bytes,
            });
        }
    }
    check_final(&mut plan, root)?;
    if plan.suppressed > 0 {
        let more = format!("... and {} more warnings", plan.suppressed);
        plan.warnings.push(more);
    }
    Ok(plan)
}

/// The rules that depend on the final member of each path, checked once every member
/// is known: nothing goes through a path that ends as a non-directory, a directory
/// member has a directory to land on, a non-directory never replaces an existing
/// directory, and a hard link's file is still the final member at its path.
fn check_final(plan: &mut Plan, root: &Root) -> Result<(), UnpackError> {
    for id in 0..plan.tree.nodes.len() as u32 {
        let node = &plan.tree.nodes[id as usize];
        let (latest, kind, through) = (node.latest, node.latest_kind, node.traversed_by);
        if latest == NONE {
            continue;
        }
        let name = |plan: &Plan| plan.shown_node(id);
        if through != NONE && kind != Latest::Dir {
            let member = plan.shown_node(plan.items[through as usize].node);
            return Err(if kind == Latest::Symlink {
                UnpackError::ThroughSymlink {
                    member,
                    symlink: name(plan),
                }
            } else {
                UnpackError::NotADirectory {
                    member,
                    parent: name(plan),
                }
            });
        }
        let fs = plan
            .tree
            .fs(root, id)
            .map_err(|c| plan.conflict(c, &plan.tree.path(id)))?;
        match (kind, fs) {
            (Latest::Dir, Fs::Other) => return Err(UnpackError::Blocked { member: name(plan) }),
            // A directory member where the sysroot has a symlink (usr-merge) follows it,
            // which must end at an existing directory.
            (Latest::Dir, Fs::Symlink) => {
                let path = plan.tree.path(id);
                plan.tree
                    .resolve_dir(root, &path, NONE, false)
                    .map_err(|c| plan.conflict(c, &path))?;
            }
            (Latest::File | Latest::Symlink, Fs::Dir) => {
                return Err(UnpackError::ReplacesDirectory { member: name(plan) })
            }
            _ => {}
        }
        if let Target::Hard(file) = plan.items[latest as usize].target {
            if !plan.is_final(file as usize) {
                return Err(UnpackError::HardLink {
                    member: name(plan),
                    target: plan.shown_node(plan.items[file as usize].node),
                    reason: "the target is replaced later in the archive",
                });
            }
        }
    }
    Ok(())
}

fn check_symlink_target(target: &[u8], limits: &Limits) -> Result<(), NameError> {
    if target.is_empty() {
        return Err(NameError::Empty);
    }
    if target.contains(&0) {
        return Err(NameError::Nul);
    }
    if target.len() > limits.max_path_len {
        return Err(NameError::TooLong {
            len: target.len(),
            limit: limits.max_path_len,
        });
    }
    Ok(())
}

/// The regular-file member a hard link ends at: the target path must hold, at this
/// point of the archive, a file or a hard link (whose file was found when it was read),
/// so one lookup per link resolves any chain.
fn hard_link_target(
    plan: &mut Plan,
    root: &Root,
    entry: &Entry,
    own: u32,
    limits: &Limits,
) -> Result<u32, UnpackError> {
    let err = |reason| UnpackError::HardLink {
        member: shown(&entry.name),
        target: shown(&entry.link),
        reason,
    };
    let target = normalize(&entry.link, limits.max_path_len, limits.max_component_len).map_err(
        |e| match e {
            NameError::DotDot => err("the target contains a '..' component"),
            _ => err("the target name is not acceptable"),
        },
    )?;
    if target.path.is_root() {
        return Err(err("the target is the root directory"));
    }
    let (parent, last) = target.path.split_last();
    let p = match plan.tree.resolve_dir(root, parent, NONE, false) {
        Ok(p) => p,
        Err(Conflict::Io(n, source)) => {
            return Err(UnpackError::Resolve {
                member: shown(&entry.name),
                path: plan.shown_node(n),
                source,
            })
        }
        Err(_) => {
            return Err(err(
                "the target's directory is a symlink or not a directory",
            ))
        }
    };
    plan.link_steps += 1;
    let Some(t) = plan.tree.lookup(p, last) else {
        return Err(err("the target is not an earlier member of the archive"));
    };
    if t == own {
        return Err(err("the link names itself"));
    }
    let node = &plan.tree.nodes[t as usize];
    let file = match node.latest_kind {
        Latest::None => return Err(err("the target is not an earlier member of the archive")),
        Latest::Dir => return Err(err("the target is a directory")),
        Latest::Symlink => return Err(err("the target is a symlink")),
        Latest::File => match plan.items[node.latest as usize].target {
            Target::Hard(file) => file,
            _ => node.latest,
        },
    };
    if plan.items[file as usize].node == own {
        return Err(err("the link names itself"));
    }
    Ok(file)
}
