//! Turning a module or alias name into the ordered list of module files to load.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::ModprobeConfig;
use crate::index::ModuleIndex;
use crate::name::{normalize, normalize_alias};

/// Why a name cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("module {name} not found")]
    Unknown { name: String },
    #[error("module {name} is blacklisted")]
    Blacklisted { name: String },
}

/// One module to load: its normalised name, the absolute path of its file and the parameter
/// string for init_module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadStep {
    pub name: String,
    pub path: PathBuf,
    pub params: String,
    /// Its initialisation makes module requests that no module can answer (see
    /// [`FUTILE_REQUESTS_AFTER`]): insert it with the kernel's requests refused.
    pub refuse_requests: bool,
}

/// Modules that depend on this one make only futile module requests while they initialise.
///
/// `crypto_simd` (the kernel's `crypto/simd.c`) wraps each internal SIMD algorithm a
/// module registers (`__xts-aes-aesni` ...) in a `cryptd(...)` instance; allocating that
/// instance looks the name up first and, not finding it, calls `request_module` for
/// `crypto-cryptd(__xts-aes-aesni)` and then `...-all` (`crypto_larval_lookup` in
/// `crypto/api.c`), before the crypto manager builds the instance from the `cryptd`
/// template, which is a dependency and already loaded. No module has such an alias, so each
/// request runs the kernel's `modprobe` helper for nothing: aesni_intel alone makes 16 (two
/// for each of its eight modes), about 0.3 s of a LUKS boot under emulation
/// (`trace_event=module:module_request`; README, "The critical path first").
pub const FUTILE_REQUESTS_AFTER: &str = "crypto_simd";

/// A step with what the loader needs to decide whether a failure stops the chain.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub(crate) step: LoadStep,
    /// Reached only through softdeps: a failure is reported but does not stop the chain.
    pub(crate) optional: bool,
}

impl ModuleIndex {
    /// Resolve a module or alias name to the ordered load list: [softdep pre..., deps
    /// (reverse modules.dep order)..., module, softdep post...], each with its absolute path;
    /// builtin modules yield no step. Unknown name -> Err(Unknown).
    ///
    /// Resolution follows modprobe: aliases from the configuration, then module names, then
    /// modules.alias (blacklist applied), then built-in module names and aliases. An alias may resolve to several modules; all are planned, deduplicated.
    pub fn plan(&self, name: &str, config: &ModprobeConfig) -> Result<Vec<LoadStep>, PlanError> {
        let targets = self.resolve(name, config)?;
        let mut plan = Plan::default();
        for &target in &targets {
            self.plan_target(target, name, config, &mut plan);
        }
        Ok(plan.steps.into_iter().map(|p| p.step).collect())
    }

    /// Module ids that `name` stands for. Empty when it is built in.
    pub(crate) fn resolve(
        &self,
        name: &str,
        config: &ModprobeConfig,
    ) -> Result<Vec<usize>, PlanError> {
        let alias = normalize_alias(name);
        let from_config = config.alias_targets(&alias);
        if !from_config.is_empty() {
            return self.alias_targets(name, from_config.into_iter().map(str::to_owned), config);
        }
        let module = normalize(name);
        if let Some(&id) = self.by_name.get(&module) {
            return Ok(vec![id]);
        }
        // modules.alias before built-in names: `crc32` names built-in lib/crc32 but must
        // load the crc32 crypto drivers that f2fs asks for by that alias.
        let matches = self.raw_alias_matches(&alias, config);
        if !matches.is_empty() {
            return self.alias_targets(name, matches.into_iter(), config);
        }
        if self.is_builtin(&module) || self.builtin_alias_matches(&alias) {
            return Ok(Vec::new());
        }
        Err(PlanError::Unknown {
            name: name.to_owned(),
        })
    }

    /// Loadable modules among the targets of an alias, with the blacklist applied (it only
    /// ever applies to alias lookups, as in modprobe).
    fn alias_targets(
        &self,
        name: &str,
        targets: impl Iterator<Item = String>,
        config: &ModprobeConfig,
    ) -> Result<Vec<usize>, PlanError> {
        let (mut ids, mut builtin, mut blacklisted) = (Vec::new(), false, false);
        for target in targets {
            if config.is_blacklisted(&target) {
                blacklisted = true;
            } else if let Some(&id) = self.by_name.get(&target) {
                ids.push(id);
            } else if self.is_builtin(&target) {
                builtin = true;
            }
        }
        if !ids.is_empty() || builtin {
            Ok(ids)
        } else if blacklisted {
            Err(PlanError::Blacklisted {
                name: name.to_owned(),
            })
        } else {
            Err(PlanError::Unknown {
                name: name.to_owned(),
            })
        }
    }

    /// Appends the steps for module `id` (requested as `requested`) to `plan`.
    pub(crate) fn plan_target(
        &self,
        id: usize,
        requested: &str,
        config: &ModprobeConfig,
        plan: &mut Plan,
    ) {
        let mut extra = String::new();
        let requested = normalize(requested);
        // Options given for the alias the user asked for (e.g. /etc/modules naming an
        // alias) belong to the module it resolved to.
        if requested != self.modules[id].name {
            extra = config.options(&requested);
        }
        self.plan_module(id, false, config, &extra, plan);
    }

    fn plan_module(
        &self,
        id: usize,
        optional: bool,
        config: &ModprobeConfig,
        extra: &str,
        plan: &mut Plan,
    ) {
        if let Some(&at) = plan.seen.get(&id) {
            // Visited before. A required visit upgrades an optional one, except while the
            // module is still being expanded (a softdep cycle), which has no slot yet.
            if let Some(pos) = at {
                if !optional {
                    plan.steps[pos].optional = false;
                }
            }
            return;
        }
        plan.seen.insert(id, None);
        let name = &self.modules[id].name;
        let soft = self.merged_softdep(name, config);
        for pre in &soft.pre {
            self.plan_soft(pre, config, plan);
        }
        for &dep in self.modules[id].deps.iter().rev() {
            self.plan_module(dep, optional, config, "", plan);
        }
        let mut params = config.options(name);
        push_param(&mut params, extra);
        if crate::class::drives_no_device(&self.modules[id].path)
            && !sets_param(&params, crate::class::ASYNC_PROBE)
        {
            push_param(&mut params, crate::class::ASYNC_PROBE);
        }
        plan.seen.insert(id, Some(plan.steps.len()));
        let refuse_requests = self.modules[id]
            .deps
            .iter()
            .any(|&dep| self.modules[dep].name == FUTILE_REQUESTS_AFTER);
        plan.steps.push(Planned {
            step: LoadStep {
                name: name.clone(),
                path: self.module_path(id),
                params,
                refuse_requests,
            },
            optional,
        });
        for post in &soft.post {
            self.plan_soft(post, config, plan);
        }
    }

    /// Softdeps are best effort: a name that resolves to nothing is skipped, as in modprobe.
    fn plan_soft(&self, name: &str, config: &ModprobeConfig, plan: &mut Plan) {
        if let Ok(ids) = self.resolve(name, config) {
            for id in ids {
                self.plan_module(id, true, config, "", plan);
            }
        }
    }

    fn merged_softdep(&self, name: &str, config: &ModprobeConfig) -> crate::index::Softdep {
        let mut soft = self.softdep(name).cloned().unwrap_or_default();
        if let Some(extra) = config.softdep(name) {
            soft.extend(extra);
        }
        soft
    }
}

/// Steps planned so far and where each module id sits (`None` while it is being expanded).
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) steps: Vec<Planned>,
    seen: HashMap<usize, Option<usize>>,
}

/// Whether PARAMS already set the parameter that ASSIGNMENT (`name=value`)
/// sets, whatever the value.
fn sets_param(params: &str, assignment: &str) -> bool {
    let name = assignment.split('=').next().unwrap_or(assignment);
    params
        .split_whitespace()
        .any(|p| p.split('=').next() == Some(name))
}

/// Appends WORDS to a module's parameter string.
fn push_param(params: &mut String, words: &str) {
    if words.is_empty() {
        return;
    }
    if !params.is_empty() {
        params.push(' ');
    }
    params.push_str(words);
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const DEP: &str = "\
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/crypto/crc32c_generic.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/drivers/usb/storage/usb-storage.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/usb/core/usbcore.ko kernel/drivers/usb/common/usb-common.ko
kernel/drivers/usb/storage/uas.ko: kernel/drivers/usb/storage/usb-storage.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/usb/core/usbcore.ko kernel/drivers/usb/common/usb-common.ko
kernel/drivers/scsi/scsi_mod.ko:
kernel/drivers/usb/core/usbcore.ko: kernel/drivers/usb/common/usb-common.ko
kernel/drivers/usb/common/usb-common.ko:
kernel/fs/nls/nls_utf8.ko:
kernel/a.ko:
kernel/b.ko:
";
    const ALIAS: &str = "\
alias crypto-crc32c crc32c_intel
alias crc32c crc32c_intel
alias crypto-crc32c crc32c_generic
alias crc32c crc32c_generic
alias fs-ext4 ext4
alias fs-vfat vfat
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb_storage
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip62in* uas
";
    const SOFTDEP: &str =
        "softdep ext4 pre: crypto-crc32c\nsoftdep a pre: b\nsoftdep b pre: a post: nls-utf8\n";

    fn index() -> ModuleIndex {
        ModuleIndex::parse(
            Path::new("/m"),
            DEP,
            ALIAS,
            SOFTDEP,
            "kernel/fs/fat/vfat.ko\nkernel/lib/crc32c.ko\n",
        )
    }

    fn names(steps: &[LoadStep]) -> Vec<&str> {
        steps.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn plans() {
        let index = index();
        let config = ModprobeConfig::default();
        let ext4 = [
            "crc32c_intel",
            "crc32c_generic",
            "jbd2",
            "mbcache",
            "crc16",
            "ext4",
        ];
        let usb = ["usb_common", "usbcore", "scsi_mod", "usb_storage"];
        let cases: [(&str, &[&str]); 9] = [
            ("ext4", &ext4),
            // Built in under that name, yet an alias of loadable drivers: the alias wins.
            ("crc32c", &["crc32c_intel", "crc32c_generic"]),
            ("fs-ext4", &ext4),
            ("fs_ext4", &ext4),
            ("usb-storage", &usb),
            (
                "uas",
                &["usb_common", "usbcore", "scsi_mod", "usb_storage", "uas"],
            ),
            ("vfat", &[]),
            ("fs-vfat", &[]),
            ("a", &["b", "nls_utf8", "a"]),
        ];
        for (name, want) in cases {
            let plan = index.plan(name, &config).unwrap();
            assert_eq!(names(&plan), want, "{name}");
        }
        let plan = index.plan("ext4", &config).unwrap();
        assert_eq!(plan[5].path, Path::new("/m/kernel/fs/ext4/ext4.ko"));
        assert_eq!(
            plan[0].path,
            Path::new("/m/kernel/arch/x86/crypto/crc32c-intel.ko")
        );
    }

    #[test]
    fn unknown_and_blacklisted() {
        let index = index();
        let mut config = ModprobeConfig::default();
        assert_eq!(
            index.plan("nope", &config),
            Err(PlanError::Unknown {
                name: "nope".into()
            })
        );
        config.add_blacklist("usb-storage");
        config.add_blacklist("ext4");
        // An explicit module name ignores the blacklist ...
        assert_eq!(
            names(&index.plan("usb_storage", &config).unwrap()).last(),
            Some(&"usb_storage")
        );
        assert_eq!(
            names(&index.plan("ext4", &config).unwrap()).last(),
            Some(&"ext4")
        );
        // ... an alias does not.
        assert_eq!(
            index.plan("fs-ext4", &config),
            Err(PlanError::Blacklisted {
                name: "fs-ext4".into()
            })
        );
        let modalias = "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00";
        assert!(index.lookup(modalias, &config).is_empty());
        assert_eq!(
            index.lookup(modalias, &ModprobeConfig::default()),
            ["usb_storage"]
        );
        // A blacklisted alias candidate leaves the others.
        config.add_blacklist("crc32c_intel");
        assert_eq!(
            names(&index.plan("crc32c", &config).unwrap()),
            ["crc32c_generic"]
        );
    }

    #[test]
    fn options_and_config_softdeps_and_aliases() {
        let index = index();
        let mut config = ModprobeConfig::default();
        config.add_conf(
            "options usb-storage delay_use=0\nsoftdep usbcore post: nls_utf8\nalias my-disk uas\noptions my-disk x=1\n",
        );
        config.add_cmdline(&["usb_storage.quirks=0bc2:2100:u"]);
        let plan = index.plan("my-disk", &config).unwrap();
        assert_eq!(
            names(&plan),
            [
                "usb_common",
                "usbcore",
                "nls_utf8",
                "scsi_mod",
                "usb_storage",
                "uas"
            ]
        );
        let params: Vec<&str> = plan.iter().map(|s| s.params.as_str()).collect();
        assert_eq!(
            params,
            [
                "",
                "",
                "async_probe=1",
                "",
                "delay_use=0 quirks=0bc2:2100:u",
                "x=1"
            ]
        );
    }

    #[test]
    fn softdep_steps_are_optional_unless_required() {
        let index = index();
        let config = ModprobeConfig::default();
        let mut plan = Plan::default();
        let ext4 = index.by_name["ext4"];
        index.plan_target(ext4, "ext4", &config, &mut plan);
        let optional: Vec<(&str, bool)> = plan
            .steps
            .iter()
            .map(|p| (p.step.name.as_str(), p.optional))
            .collect();
        assert_eq!(
            optional,
            [
                ("crc32c_intel", true),
                ("crc32c_generic", true),
                ("jbd2", false),
                ("mbcache", false),
                ("crc16", false),
                ("ext4", false)
            ]
        );
    }
}
