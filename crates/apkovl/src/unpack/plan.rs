//! Pass 1: read the whole archive without writing and decide what pass 2 will do.

use std::collections::HashMap;
use std::io::Read;

use super::{Limits, UnpackError};
use crate::archive::{Entry, Kind, TarReader};
use crate::member::{listed_name, normalize, shown, MemberPath, NameError};

/// One archive member as pass 1 accepted it.
pub(super) struct Item {
    /// The raw entry; pass 2 must read an identical one at the same index.
    pub(super) entry: Entry,
    /// Normalised path; `None` for skipped entries.
    pub(super) path: Option<MemberPath>,
    /// Normalised hard-link target.
    pub(super) link_path: Option<MemberPath>,
    /// This member is the last one for its path ("last wins", like tar).
    pub(super) is_final: bool,
}

/// The verified archive.
pub(super) struct Plan {
    pub(super) items: Vec<Item>,
    /// Path -> index of the latest member with that path.
    pub(super) latest: HashMap<Vec<u8>, usize>,
    pub(super) members: Vec<String>,
    pub(super) warnings: Vec<String>,
}

impl Plan {
    /// The final item for `path`, if the archive has one.
    pub(super) fn final_item(&self, path: &[u8]) -> Option<(usize, &Item)> {
        self.latest.get(path).map(|&i| (i, &self.items[i]))
    }
}

/// Reads the whole stream (so every checksum is verified) and checks every rule.
pub(super) fn verify<R: Read>(
    tar: &mut TarReader<R>,
    limits: &Limits,
) -> Result<Plan, UnpackError> {
    let mut plan = Plan {
        items: Vec::new(),
        latest: HashMap::new(),
        members: Vec::new(),
        warnings: Vec::new(),
    };
    let mut warned_absolute = false;
    while let Some(entry) = tar.next_entry()? {
        if plan.items.len() as u64 >= limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        let member = shown(&entry.name);
        if let Kind::Skipped(what) = entry.kind {
            plan.warnings.push(format!("skipped {what} {member}"));
            plan.items.push(Item {
                entry,
                path: None,
                link_path: None,
                is_final: false,
            });
            continue;
        }
        let name_err = |reason| UnpackError::Name {
            member: member.clone(),
            reason,
        };
        let norm = normalize(&entry.name, limits.max_path_len, limits.max_component_len)
            .map_err(name_err)?;
        if norm.was_absolute && !warned_absolute {
            warned_absolute = true;
            plan.warnings
                .push("removing leading '/' from member names".to_owned());
        }
        if norm.path.is_root() && entry.kind != Kind::Dir {
            return Err(name_err(NameError::Empty));
        }
        let link_path = match entry.kind {
            Kind::Symlink => {
                check_symlink_target(&entry.link, limits).map_err(|reason| {
                    UnpackError::SymlinkTarget {
                        member: member.clone(),
                        reason,
                    }
                })?;
                None
            }
            Kind::HardLink => Some(hard_link_target(&plan, &entry, &member, limits)?),
            _ => None,
        };
        check_ancestors(&plan, &norm.path, &member)?;
        plan.members.push(listed_name(&entry.name));
        let index = plan.items.len();
        if !norm.path.is_root() {
            plan.latest.insert(norm.path.0.clone(), index);
        }
        plan.items.push(Item {
            entry,
            path: Some(norm.path),
            link_path,
            is_final: false,
        });
    }
    let finals: Vec<usize> = plan.latest.values().copied().collect();
    for i in finals {
        plan.items[i].is_final = true;
    }
    for item in &plan.items {
        let (Some(path), true) = (&item.path, item.is_final) else {
            continue;
        };
        let member = shown(&item.entry.name);
        check_ancestors(&plan, path, &member)?;
        if item.entry.kind == Kind::HardLink {
            resolve_hard_link(&plan, item)?;
        }
    }
    Ok(plan)
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

fn hard_link_target(
    plan: &Plan,
    entry: &Entry,
    member: &str,
    limits: &Limits,
) -> Result<MemberPath, UnpackError> {
    let err = |reason| UnpackError::HardLink {
        member: member.to_owned(),
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
    if !plan.latest.contains_key(&target.path.0) {
        return Err(err("the target is not an earlier member of the archive"));
    }
    Ok(target.path)
}

/// Every ancestor of `path` must be a directory (or not a member at all). Before the
/// end (`at_end == false`) this is checked against the members seen so far, in archive
/// order; at the end against the final state of each path. Both use `latest`.
fn check_ancestors(plan: &Plan, path: &MemberPath, member: &str) -> Result<(), UnpackError> {
    for anc in path.ancestors() {
        let Some((_, item)) = plan.final_item(anc) else {
            continue;
        };
        match item.entry.kind {
            Kind::Dir => {}
            Kind::Symlink => {
                return Err(UnpackError::ThroughSymlink {
                    member: member.to_owned(),
                    symlink: shown(anc),
                })
            }
            _ => {
                return Err(UnpackError::NotADirectory {
                    member: member.to_owned(),
                    parent: shown(anc),
                })
            }
        }
    }
    Ok(())
}

/// Follows a chain of hard links to the regular file it ends at; returns its index.
pub(super) fn resolve_hard_link(plan: &Plan, item: &Item) -> Result<usize, UnpackError> {
    let err = |reason| UnpackError::HardLink {
        member: shown(&item.entry.name),
        target: shown(&item.entry.link),
        reason,
    };
    let mut cur = item;
    // Each step moves to another final item, so more steps than items means a cycle.
    for _ in 0..=plan.items.len() {
        let Some(target) = &cur.link_path else {
            return Err(err("the target is not a regular file"));
        };
        let Some((index, next)) = plan.final_item(&target.0) else {
            return Err(err("the target is not an earlier member of the archive"));
        };
        match next.entry.kind {
            Kind::File => return Ok(index),
            Kind::HardLink => cur = next,
            Kind::Dir => return Err(err("the target is a directory")),
            Kind::Symlink => return Err(err("the target is a symlink")),
            Kind::Skipped(_) => return Err(err("the target is not a regular file")),
        }
    }
    Err(err("the hard links form a loop"))
}
