//! Upstream's nlplug-findfs VM matrix (mkinitfs' `nlplug-findfs/test.sh`,
//! `init.sh` and `expected`, read from the fixture at test time): 126
//! cases, 7 disk sets × 18 argument combinations, run against our binary
//! called `nlplug-findfs`, each result formatted as init.sh's `TEST
//! RESULT:` line and compared with upstream's `expected`.
//!
//! Batched: upstream boots one VM per case; here one boot per disk set
//! (`nlplug-matrix-0`, `-05`, ...) runs its 18 cases in sequence, which
//! keeps the matrix at 7 boots under TCG instead of 126. Between cases the
//! guest returns to the state it booted in (the mounts under /media
//! unmounted, md arrays stopped, device-mapper mappings removed, every
//! file the case made under /dev, /media, /run, /tmp and the test
//! directory removed) and checks that state (those trees, /proc/mounts,
//! the arrays in /proc/mdstat, the dm and md disks in /sys/block) against
//! the one before the first case; a
//! difference stops the boot and fails the scenario. What cannot be undone
//! is the modules a case loaded, which stay for the next.
//!
//! As in upstream's guest, /dev is no devtmpfs: the nodes come from the
//! nlplug-findfs under test (upstream's `-p /sbin/mdev`).

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

use super::nlplug_matrix_disks::{self as disks, TEST_PATH};
use super::*;

/// Cases whose result differs from upstream's `expected`, each with the
/// reason; every other case must match, and a case listed here that
/// matches fails the scenario until it is taken off the list.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

pub(super) fn scenarios() -> Vec<Scenario> {
    macro_rules! set {
        ($name:literal, $set:literal, $setup:ident, $check:ident) => {{
            fn $setup(assets: &Assets, dir: &Path) -> Result<Setup> {
                setup_set(assets, dir, $set)
            }
            fn $check(outcome: &Outcome, _report: Option<&Report>) -> Vec<String> {
                check_set(outcome, $set)
            }
            Scenario {
                name: $name,
                about: concat!(
                    "upstream's nlplug-findfs matrix, disk set ",
                    $set,
                    ": its 18 cases against `expected`"
                ),
                image: ImageKind::Assemble,
                setup: $setup,
                check: $check,
            }
        }};
    }
    vec![
        set!("nlplug-matrix-0", "0", setup_0, check_0),
        set!("nlplug-matrix-05", "05", setup_05, check_05),
        set!("nlplug-matrix-1", "1", setup_1, check_1),
        set!("nlplug-matrix-12", "12", setup_12, check_12),
        set!("nlplug-matrix-2", "2", setup_2, check_2),
        set!("nlplug-matrix-3", "3", setup_3, check_3),
        set!("nlplug-matrix-45", "45", setup_45, check_45),
    ]
}

/// One case of test.sh: its name and nlplug-findfs' arguments after
/// `-p /sbin/mdev`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Case {
    pub name: String,
    pub args: String,
}

/// test.sh's argument for a case letter.
fn letter_arg(letter: char) -> Option<String> {
    Some(match letter {
        'a' => "-a apkovl".to_string(),
        'b' => "-b bootrepo".to_string(),
        'c' => "-c vda1".to_string(),
        'k' => format!("-k {TEST_PATH}/build/key"),
        'm' => "-m cryptdev".to_string(),
        'H' => "-H vda2".to_string(),
        'n' => "-n".to_string(),
        _ => return None,
    })
}

/// The 18 cases of a disk set, in test.sh's order (its `for ab`, `for n`,
/// `for ckmH` loops).
pub(super) fn cases(set: &str) -> Vec<Case> {
    let mut out = Vec::new();
    for ab in ["a", "b", "ab"] {
        for n in ["", "n"] {
            for ckmh in ["", "ckm", "ckmH"] {
                let letters = format!("{ab}{n}{ckmh}");
                let args: Vec<String> = letters.chars().filter_map(letter_arg).collect();
                out.push(Case {
                    name: format!("{set}-{letters}"),
                    args: args.join(" "),
                });
            }
        }
    }
    out
}

/// `expected`'s lines: case name → the rest of the line.
pub(super) fn parse_expected(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The guest's results: `TEST RESULT NAME: ...` lines, name → the rest
/// (init.sh's `TEST RESULT:` line with the case's name added).
pub(super) fn parse_results(log: &str) -> BTreeMap<String, String> {
    log.lines()
        .filter_map(|l| {
            let rest = l.trim_end_matches('\r').split_once("TEST RESULT ")?.1;
            let (name, result) = rest.split_once(':')?;
            Some((name.to_string(), result.trim().to_string()))
        })
        .collect()
}

/// The case boot's `rdinit`: init.sh's start, then its test mode once
/// per case (`mkdir output; cd output; nlpffs ..; echo $? > status`, the
/// `TEST RESULT` line), each case from the state the boot started in.
const DRIVER: &str = r#"#!/bin/busybox sh
export PATH=/usr/bin:/bin:/usr/sbin:/sbin
busybox mount -t proc none /proc
busybox mount -t sysfs none /sys
busybox mkdir /usr/bin /usr/sbin
/bin/busybox --install
T=/nlpmatrix
files() { find /dev /media /run /tmp $T 2>/dev/null | sort; }
state() {
	files
	grep '^md' /proc/mdstat 2>/dev/null
	ls /sys/block | grep -E '^(dm-|md)'
	cat /proc/mounts
}
cleanup() {
	cd /
	grep ' /media/' /proc/mounts | cut -d' ' -f2 | sort -r | while read -r m; do umount "$m"; done
	mdadm --stop --scan 2>/dev/null
	DM_DISABLE_UDEV=1 dmsetup remove_all
	mdadm --stop --scan 2>/dev/null
	files | grep -vxF -f /files0 | sort -r | while read -r p; do rm -rf "$p"; done
}
files > /files0
state > /state0
while read -r name args <&3; do
	state > /state
	if ! cmp -s /state0 /state; then
		echo "NLPLUG-MATRIX-DIRTY before $name:"
		diff /state0 /state
		break
	fi
	echo "NLPLUG-MATRIX-CASE $name: nlplug-findfs -p /sbin/mdev $args"
	mkdir $T/output
	cd $T/output
	timeout 120 ../nlplug-findfs -p /sbin/mdev $args
	echo $? > status
	echo -n "TEST RESULT $name:"
	for file in *; do
		echo -n " $file="
		sed ':a;N;s/\n/:/;ta' $file | tr -d '\n'
	done
	echo
	cleanup
done 3< $T/cases
echo NLPLUG-MATRIX-DONE
poweroff -f
"#;

fn setup_set(assets: &Assets, dir: &Path, set: &str) -> Result<Setup> {
    let all = disks::disks(assets)?;
    let mut files = Vec::new();
    disks::with_libraries("/usr/sbin/dmsetup", &mut files)?;
    files.push(FileSpec::new("nlpmatrix/run", 0o755, DRIVER));
    files.push(FileSpec::new(
        "nlpmatrix/build/key",
        0o600,
        disks::KEY.to_vec(),
    ));
    let list: String = cases(set)
        .iter()
        .map(|c| format!("{} {}\n", c.name, c.args))
        .collect();
    files.push(FileSpec::new("nlpmatrix/cases", 0o644, list));
    let tree = dir.join("tree");
    media::write_tree(&tree, &files)?;
    fs::set_permissions(tree.join("nlpmatrix"), fs::Permissions::from_mode(0o755))?;
    // Our binary under upstream's name, where init.sh runs it (`$TEST_PATH/nlplug-findfs`).
    symlink("/init", tree.join("nlpmatrix/nlplug-findfs"))
        .context("linking nlpmatrix/nlplug-findfs")?;
    let initrd = dir.join("initrd");
    disks::initrd_with(assets.image(ImageKind::Assemble)?, &tree, &initrd)?;
    let mut vm = Vm::new(assets.accel);
    vm.kernel_boot(
        &assets.kernel,
        &initrd,
        &format!("console=ttyS0 panic=-1 rdinit={TEST_PATH}/run nlpffs_path={TEST_PATH} nlpffs_mode=test"),
    );
    for d in set.chars() {
        let i = d.to_digit(10).context("disk set digit")? as usize;
        vm.virtio_disk(all.get(i).context("disk index")?);
    }
    Ok(Setup {
        vm,
        stop: Some(Box::new(|log: &str| {
            log.contains("NLPLUG-MATRIX-DONE") || log.contains("Kernel panic")
        })),
        timeout: Duration::from_secs(900),
    })
}

/// Judges a disk set's log against upstream's `expected`.
fn check_set(outcome: &Outcome, set: &str) -> Vec<String> {
    let expected = match disks::upstream() {
        Ok(up) => parse_expected(&up.expected),
        Err(e) => return vec![format!("reading upstream's expected: {e:#}")],
    };
    judge(set, &expected, &parse_results(&outcome.log), &outcome.log)
}

/// The failures of SET's cases: a result missing or differing from
/// EXPECTED where no known difference says so, a known difference that
/// now matches, a dirty state between cases. Prints the pass count.
pub(super) fn judge(
    set: &str,
    expected: &BTreeMap<String, String>,
    got: &BTreeMap<String, String>,
    log: &str,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut passed = 0;
    let all = cases(set);
    for case in &all {
        let want = match expected.get(&case.name) {
            Some(w) => w,
            None => {
                failures.push(format!("{}: not in upstream's expected", case.name));
                continue;
            }
        };
        let known = KNOWN_DIFFERENCES
            .iter()
            .find(|(n, _)| *n == case.name)
            .map(|(_, why)| *why);
        match (got.get(&case.name), known) {
            (None, _) => failures.push(format!("{}: no TEST RESULT line", case.name)),
            (Some(g), None) if g == want => passed += 1,
            (Some(g), None) => failures.push(format!(
                "{}: got `{g}`, upstream expects `{want}`",
                case.name
            )),
            (Some(g), Some(_)) if g == want => failures.push(format!(
                "{}: now matches upstream (`{g}`): take it off KNOWN_DIFFERENCES",
                case.name
            )),
            (Some(_), Some(_)) => {}
        }
    }
    if let Some(at) = log.find("NLPLUG-MATRIX-DIRTY") {
        let tail: String = log[at..].lines().take(20).collect::<Vec<_>>().join("\n");
        failures.push(format!("the state between cases was not clean: {tail}"));
    }
    if log.contains("Kernel panic") {
        failures.push("kernel panic on the console".to_string());
    }
    println!(
        "nlplug matrix, disk set {set}: {passed}/{} cases match upstream's expected",
        all.len()
    );
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The disk sets of test.sh: digits index the disks, attached in order.
    const DISK_SETS: [&str; 7] = ["0", "05", "1", "12", "2", "3", "45"];

    #[test]
    fn one_scenario_per_disk_set() {
        let names: Vec<&str> = scenarios().iter().map(|s| s.name).collect();
        let want: Vec<String> = DISK_SETS
            .iter()
            .map(|s| format!("nlplug-matrix-{s}"))
            .collect();
        assert_eq!(names, want);
    }

    #[test]
    fn cases_are_test_sh_loops_in_its_order() {
        let c = cases("45");
        assert_eq!(c.len(), 18);
        assert_eq!(c[0].name, "45-a");
        assert_eq!(c[0].args, "-a apkovl");
        assert_eq!(c[17].name, "45-abnckmH");
        assert_eq!(
            c[17].args,
            format!(
                "-a apkovl -b bootrepo -n -c vda1 -k {TEST_PATH}/build/key -m cryptdev -H vda2"
            )
        );
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            &names[..6],
            [
                "45-a",
                "45-ackm",
                "45-ackmH",
                "45-an",
                "45-anckm",
                "45-anckmH"
            ]
        );
    }

    #[test]
    fn a_result_line_is_read_with_its_case_name() {
        let log = "noise\r\nTEST RESULT 3-a: status=1\r\nTEST RESULT 05-a: apkovl=/media/vda1/foo.apkovl.tar.gz:/media/md0/foo.apkovl.tar.gz status=0\n";
        let got = parse_results(log);
        assert_eq!(got["3-a"], "status=1");
        assert_eq!(
            got["05-a"],
            "apkovl=/media/vda1/foo.apkovl.tar.gz:/media/md0/foo.apkovl.tar.gz status=0"
        );
    }

    #[test]
    fn a_differing_or_missing_case_fails_and_a_match_counts() {
        let expected = parse_expected("0-a status=0\n0-b status=1\n");
        let mut got = BTreeMap::new();
        got.insert("0-a".to_string(), "status=0".to_string());
        got.insert("0-b".to_string(), "status=0".to_string());
        let failures = judge("0", &expected, &got, "");
        assert!(
            failures
                .iter()
                .any(|f| f.starts_with("0-b: got `status=0`")),
            "{failures:?}"
        );
        assert!(
            !failures.iter().any(|f| f.starts_with("0-a:")),
            "{failures:?}"
        );
        // The 16 other cases are not in this `expected`.
        assert_eq!(failures.len(), 17, "{failures:?}");
    }

    #[test]
    fn a_dirty_state_between_cases_fails() {
        let failures = judge(
            "0",
            &BTreeMap::new(),
            &BTreeMap::new(),
            "NLPLUG-MATRIX-DIRTY before 0-b:\n+/dev/dm-0\n",
        );
        assert!(failures
            .iter()
            .any(|f| f.contains("not clean") && f.contains("/dev/dm-0")));
    }

    #[test]
    fn known_differences_name_real_cases() {
        let all: Vec<String> = DISK_SETS
            .iter()
            .flat_map(|s| cases(s))
            .map(|c| c.name)
            .collect();
        assert_eq!(all.len(), 126);
        for (name, why) in KNOWN_DIFFERENCES {
            assert!(all.iter().any(|n| n == name), "{name}");
            assert!(!why.is_empty(), "{name}");
        }
    }
}
