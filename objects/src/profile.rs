//! The AWS shared files (`~/.aws/credentials`, `~/.aws/config`): INI sections of
//! `key = value` lines. Only what connecting needs is read from them.

use std::{collections::HashMap, path::Path};

/// One profile's settings, keys lower-cased.
pub type Section = HashMap<String, String>;

/// The section named `name` in `text`; `[profile NAME]` (the config file's spelling) and
/// `[NAME]` (the credentials file's) both count.
pub fn section(text: &str, name: &str) -> Option<Section> {
    let mut found: Option<Section> = None;
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let header = header.trim();
            let header = header.strip_prefix("profile ").unwrap_or(header).trim();
            inside = header == name;
            if inside {
                found.get_or_insert_with(Section::new);
            }
            continue;
        }
        if !inside {
            continue;
        }
        if let (Some(section), Some((key, value))) = (found.as_mut(), line.split_once('=')) {
            section.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    found
}

/// The section `name` of the file at `path`, if the file and the section exist.
pub fn read_section(path: &Path, name: &str) -> Option<Section> {
    section(&std::fs::read_to_string(path).ok()?, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_by_either_spelling_and_comments_skipped() {
        let text = "\
# shared
[default]
aws_access_key_id = AKIDEFAULT
aws_secret_access_key=s3cr3t=with=equals

[profile fleet]
region = eu-west-1
; a comment
endpoint_url = http://127.0.0.1:9000
";
        let default = section(text, "default").unwrap();
        assert_eq!(default["aws_access_key_id"], "AKIDEFAULT");
        assert_eq!(default["aws_secret_access_key"], "s3cr3t=with=equals");
        let fleet = section(text, "fleet").unwrap();
        assert_eq!(fleet["region"], "eu-west-1");
        assert_eq!(fleet["endpoint_url"], "http://127.0.0.1:9000");
        assert!(section(text, "other").is_none());
    }
}
