use std::{collections::HashSet, time::SystemTime};

use super::{format_bytes, format_duration, Deletion, Kept, Plan, Policy, Recording};

/// Decides what to delete: everything older than max_age; then, oldest first, until the
/// total is at most max_total; then, oldest first, until free space (counting what the
/// deletions free) is at least min_free. `free_bytes`: free space now, if known.
pub fn plan(
    recordings: &[Recording],
    policy: &Policy,
    now: SystemTime,
    free_bytes: Option<u64>,
) -> Plan {
    let mut order: Vec<&Recording> = recordings.iter().collect();
    order.sort_by(|a, b| (a.last_written, &a.id).cmp(&(b.last_written, &b.id)));
    let mut planner = Planner {
        plan: Plan::default(),
        taken: HashSet::new(),
        total: recordings.iter().map(|r| r.bytes).sum(),
        freed: 0,
    };
    if let Some(max_age) = policy.max_age {
        for recording in &order {
            if now
                .duration_since(recording.last_written)
                .unwrap_or_default()
                > max_age
            {
                let reason = format!(
                    "older than {} (last written {})",
                    format_duration(max_age),
                    humantime::format_rfc3339_seconds(recording.last_written)
                );
                planner.take(recording, reason);
            }
        }
    }
    if let Some(max_total) = policy.max_total_bytes {
        for recording in &order {
            if planner.total <= max_total {
                break;
            }
            let reason = format!(
                "over max_total_size {} (recordings take {})",
                format_bytes(max_total),
                format_bytes(planner.total)
            );
            planner.take(recording, reason);
        }
        if planner.total > max_total {
            planner.plan.unmet.push(format!(
                "max_total_size {} not met: recordings still take {}",
                format_bytes(max_total),
                format_bytes(planner.total)
            ));
        }
    }
    if let (Some(min_free), Some(free)) = (policy.min_free_bytes, free_bytes) {
        for recording in &order {
            if free + planner.freed >= min_free {
                break;
            }
            let reason = format!(
                "free space {} below min_free {}",
                format_bytes(free + planner.freed),
                format_bytes(min_free)
            );
            planner.take(recording, reason);
        }
        if free + planner.freed < min_free {
            planner.plan.unmet.push(format!(
                "min_free {} not met: {} free after this sweep",
                format_bytes(min_free),
                format_bytes(free + planner.freed)
            ));
        }
    }
    planner.plan
}

struct Planner<'a> {
    plan: Plan,
    /// Ids already deleted or kept.
    taken: HashSet<&'a str>,
    total: u64,
    freed: u64,
}

impl<'a> Planner<'a> {
    fn take(&mut self, recording: &'a Recording, reason: String) {
        if !self.taken.insert(&recording.id) {
            return;
        }
        match recording.protection {
            Some(protection) => self.plan.kept.push(Kept {
                recording_id: recording.id.clone(),
                protection,
                bytes: recording.bytes,
                rule: reason,
            }),
            None => {
                self.total -= recording.bytes;
                self.freed += recording.bytes;
                self.plan.deletions.push(Deletion {
                    recording_id: recording.id.clone(),
                    reason,
                    segments: recording.segments.clone(),
                    bytes: recording.bytes,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{path::PathBuf, time::Duration};

    use super::*;
    use crate::retention::Protection;

    const DAY: Duration = Duration::from_secs(86400);

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000)
    }

    fn fake(id: &str, days_old: u64, bytes: u64, protection: Option<Protection>) -> Recording {
        Recording {
            id: id.to_owned(),
            segments: vec![PathBuf::from(format!("{id}.rcd"))],
            bytes,
            last_written: now() - DAY * days_old as u32,
            protection,
        }
    }

    fn deleted(plan: &Plan) -> Vec<&str> {
        plan.deletions
            .iter()
            .map(|d| d.recording_id.as_str())
            .collect()
    }

    #[test]
    fn plan_deletes_expired_then_oldest_over_quota_then_for_free_space() {
        let recordings = [
            fake("aa", 9, 100, None),
            fake("bb", 8, 100, Some(Protection::Held)),
            fake("cc", 3, 100, None),
            fake("dd", 2, 100, None),
            fake("ee", 1, 100, Some(Protection::Active)),
            fake("ff", 0, 100, None),
        ];
        let age_only = plan(&recordings, &Policy::default(), now(), None);
        assert_eq!(deleted(&age_only), ["aa"]);
        assert!(age_only.deletions[0]
            .reason
            .starts_with("older than 7d (last written "));
        assert_eq!(age_only.kept.len(), 1);
        assert_eq!(age_only.kept[0].recording_id, "bb");

        // 600 bytes, at most 350: aa by age, then cc and dd, oldest first (bb is held).
        let policy = Policy {
            max_total_bytes: Some(350),
            ..Policy::default()
        };
        let quota = plan(&recordings, &policy, now(), None);
        assert_eq!(deleted(&quota), ["aa", "cc", "dd"]);
        assert!(quota.deletions[1]
            .reason
            .starts_with("over max_total_size 350 B"));
        assert!(quota.unmet.is_empty());

        // 50 bytes free, at least 260: aa (+100), cc (+100), dd (+100) → 350.
        let policy = Policy {
            max_age: None,
            min_free_bytes: Some(260),
            ..Policy::default()
        };
        let free = plan(&recordings, &policy, now(), Some(50));
        assert_eq!(deleted(&free), ["aa", "cc", "dd"]);
        assert!(free.deletions[0]
            .reason
            .starts_with("free space 50 B below min_free 260 B"));

        // Nothing but held and active recordings left to delete: the quota stays unmet.
        let policy = Policy {
            max_total_bytes: Some(100),
            ..Policy::default()
        };
        let unmet = plan(&recordings, &policy, now(), None);
        assert_eq!(deleted(&unmet), ["aa", "cc", "dd", "ff"]);
        let kept: Vec<&str> = unmet.kept.iter().map(|k| k.recording_id.as_str()).collect();
        assert_eq!(kept, ["bb", "ee"]);
        assert_eq!(unmet.unmet.len(), 1, "{:?}", unmet.unmet);
    }
}
