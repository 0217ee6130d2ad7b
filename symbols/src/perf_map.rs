//! A perf map: one line per piece of JIT code, `START SIZE NAME` with START and SIZE in hex,
//! as Node (`--perf-basic-prof`), Python 3.12 (`-X perf`) and the JVM's agents write them.

use std::path::Path;

pub struct PerfMap {
    /// (start, end, name), sorted by start.
    entries: Vec<(u64, u64, String)>,
}

impl PerfMap {
    /// `None` when the file cannot be read (the runtime writes none).
    pub fn read(path: &Path) -> Option<PerfMap> {
        std::fs::read_to_string(path)
            .ok()
            .map(|text| PerfMap::parse(&text))
    }

    pub fn parse(text: &str) -> PerfMap {
        let mut entries: Vec<(u64, u64, String)> = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.splitn(3, ' ');
                let hex =
                    |field: &str| u64::from_str_radix(field.trim_start_matches("0x"), 16).ok();
                let start = hex(fields.next()?)?;
                let size = hex(fields.next()?)?;
                let name = fields.next()?.trim();
                Some((start, start.checked_add(size)?, name.to_owned()))
            })
            .collect();
        entries.sort_by_key(|entry| entry.0);
        PerfMap { entries }
    }

    /// The name of the code at `address`; the latest entry wins where code was replaced.
    pub fn name(&self, address: u64) -> Option<&str> {
        let after = self.entries.partition_point(|entry| entry.0 <= address);
        self.entries[..after]
            .iter()
            .rev()
            .take(64)
            .find(|entry| address < entry.1)
            .map(|entry| entry.2.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_code_an_address_is_in() {
        let map = PerfMap::parse(
            "3a1c0040 20 LazyCompile:~main /app/a.js:1\n\
             3a1c0100 40 LazyCompile:~handle /app/a.js:9\n\
             not a line\n",
        );
        assert_eq!(map.name(0x3a1c0050), Some("LazyCompile:~main /app/a.js:1"));
        assert_eq!(
            map.name(0x3a1c013f),
            Some("LazyCompile:~handle /app/a.js:9")
        );
        assert_eq!(map.name(0x3a1c0140), None);
        assert_eq!(map.name(0x3a1c0070), None);
        assert_eq!(map.name(0x10), None);
    }
}
