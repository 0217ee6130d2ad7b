//! Which processes the service may record: those a `[[targets]]` entry names by program
//! name, executable or cgroup. A request for anything else is refused.

use std::path::{Path, PathBuf};

use recorder_config::TargetConfig;

/// The first target that `pid` is, or `None`.
pub fn matching(targets: &[TargetConfig], pid: u32) -> Option<&TargetConfig> {
    let process = ProcessFacts::read(pid);
    targets.iter().find(|target| process.is(target))
}

/// What the service needs to know of a process to match it against targets.
struct ProcessFacts {
    comm: Option<String>,
    exe: Option<PathBuf>,
    cgroup: Option<String>,
}

impl ProcessFacts {
    fn read(pid: u32) -> ProcessFacts {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        ProcessFacts {
            comm: std::fs::read_to_string(proc.join("comm"))
                .ok()
                .map(|comm| comm.trim_end_matches('\n').to_owned()),
            exe: std::fs::read_link(proc.join("exe")).ok(),
            cgroup: std::fs::read_to_string(proc.join("cgroup"))
                .ok()
                .and_then(|text| unified_cgroup(&text)),
        }
    }

    fn is(&self, target: &TargetConfig) -> bool {
        if let Some(comm) = &target.comm {
            return self.comm.as_ref() == Some(comm);
        }
        if let Some(exe) = &target.exe {
            return self.exe.as_deref() == Some(exe.as_path());
        }
        if let (Some(wanted), Some(actual)) = (&target.cgroup, &self.cgroup) {
            return Path::new(actual).starts_with(Path::new(wanted));
        }
        false
    }
}

/// The cgroup v2 path in a /proc/PID/cgroup file (the `0::` line).
fn unified_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::to_owned)
}

/// Every running process that is `target` (for an `exe` target, which the probes cannot
/// match by themselves).
pub fn pids_of(target: &TargetConfig) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id() && ProcessFacts::read(pid).is(target))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(comm: Option<&str>, exe: Option<&str>, cgroup: Option<&str>) -> TargetConfig {
        TargetConfig {
            name: "t".into(),
            comm: comm.map(Into::into),
            exe: exe.map(Into::into),
            cgroup: cgroup.map(Into::into),
        }
    }

    #[test]
    fn matches_this_process_by_each_kind() {
        let me = std::process::id();
        let exe = std::env::current_exe().unwrap();
        let comm = std::fs::read_to_string(format!("/proc/{me}/comm")).unwrap();
        let cgroup = unified_cgroup(&std::fs::read_to_string("/proc/self/cgroup").unwrap());
        let by_exe = target(None, exe.to_str(), None);
        assert!(matching(std::slice::from_ref(&by_exe), me).is_some());
        let by_comm = target(Some(comm.trim_end()), None, None);
        assert!(matching(std::slice::from_ref(&by_comm), me).is_some());
        if let Some(cgroup) = cgroup {
            // Every process is under the root; a sibling path is not a prefix match.
            assert!(matching(&[target(None, None, Some("/"))], me).is_some());
            let sibling = format!("{cgroup}-other");
            assert!(matching(&[target(None, None, Some(&sibling))], me).is_none());
        }
        let other = target(Some("no-such-comm"), None, None);
        assert!(matching(&[other, target(None, Some("/bin/nothing"), None)], me).is_none());
        // Not "empty": another test of this binary (privileges.rs) forks a child with the
        // same exe while this one runs.
        assert!(
            !pids_of(&by_exe).contains(&me),
            "the service never lists itself"
        );
    }

    #[test]
    fn unified_cgroup_line() {
        assert_eq!(
            unified_cgroup("1:name=systemd:/x\n0::/system.slice/api.service\n").as_deref(),
            Some("/system.slice/api.service")
        );
        assert_eq!(unified_cgroup("1:cpu:/x\n"), None);
    }
}
