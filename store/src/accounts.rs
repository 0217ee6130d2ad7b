//! User and group names from the system's account database, so config files and logs can
//! use names while the kernel checks numbers.

use nix::unistd::{Group, Uid, User};

/// The gid of group `name`, or `None` when there is no such group.
pub fn group_id(name: &str) -> Option<u32> {
    Group::from_name(name).ok()?.map(|group| group.gid.as_raw())
}

/// The login name of `uid`, or `None` when it has none.
pub fn user_name(uid: u32) -> Option<String> {
    User::from_uid(Uid::from_raw(uid))
        .ok()?
        .map(|user| user.name)
}

/// `alice`, or `uid 1234` for a uid without a name.
pub fn describe_user(uid: u32) -> String {
    user_name(uid).unwrap_or_else(|| format!("uid {uid}"))
}

#[cfg(test)]
mod tests {
    use nix::unistd::Gid;

    use super::*;

    #[test]
    fn root_is_known_and_nonsense_is_not() {
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(group_id("no-such-group-recorderd"), None);
        assert_eq!(describe_user(4_000_000_000), "uid 4000000000");
        // Gid is nix's; the rest of recorderd speaks raw numbers.
        assert_eq!(
            Group::from_gid(Gid::from_raw(0)).unwrap().unwrap().name,
            "root"
        );
    }
}
