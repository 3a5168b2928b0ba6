//! Which instances a tool acts on: every descriptor, or those picked by `--from`, `--select`
//! and `--role` (an intersection). Explicit selectors that match nothing are an error — a
//! script that silently does nothing is worse than one that stops. What does not belong here:
//! the flags themselves (cli/), anything that talks to AWS.

use super::descriptor::{is_descriptor_id, Descriptor};
use super::store::Store;
use crate::error::{Error, Result, ResultExt};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;

/// Which instances a tool acts on (none set: all of them).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `--from FILE` ('-' for stdin): a list whose first field per line is an instance id.
    pub from: Option<PathBuf>,
    /// `--select 1,3-5`.
    pub indexes: Option<BTreeSet<u32>>,
    /// `--role NAME`.
    pub role: Option<String>,
}

impl Selection {
    pub fn is_explicit(&self) -> bool {
        self.from.is_some() || self.indexes.is_some() || self.role.is_some()
    }
}

/// `1,3-5` → {1,3,4,5}.
pub fn parse_indexes(s: &str) -> std::result::Result<BTreeSet<u32>, String> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("{part:?} is not an index or range (like 1,3-5)");
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<u32>().map_err(|_| bad())?,
                b.trim().parse::<u32>().map_err(|_| bad())?,
            ),
            None => {
                let n = part.parse::<u32>().map_err(|_| bad())?;
                (n, n)
            }
        };
        if lo == 0 || hi < lo || hi - lo > 100_000 {
            return Err(bad());
        }
        out.extend(lo..=hi);
    }
    if out.is_empty() {
        return Err("no index given".into());
    }
    Ok(out)
}

/// Instance ids from `--from` text: the first field of each non-blank, non-comment line that
/// is an instance id — so what our own tools print chains (`ec2-create` prints `<id> <addr>`,
/// `ec2-status` `<index> <id> …`, `--failed-to` one id a line).
pub fn parse_id_list(text: &str, source: &str) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some(first) = line.split_whitespace().next() else {
            continue;
        };
        if first.starts_with('#') {
            continue;
        }
        let Some(id) = line.split_whitespace().find(|w| is_descriptor_id(w)) else {
            return Err(Error::input(format!(
                "{source}: line {}: {first:?} is not an instance id (nor is any field of it)",
                n + 1
            )));
        };
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_owned());
        }
    }
    Ok(ids)
}

fn read_from(path: &PathBuf) -> Result<(String, String)> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .input_err("--from -: stdin")?;
        Ok((s, "--from -".into()))
    } else {
        let s = std::fs::read_to_string(path).input_err(format!("--from {}", path.display()))?;
        Ok((s, format!("--from {}", path.display())))
    }
}

/// The selected descriptors, by index. With no selector: all of them (possibly none).
pub fn select(store: &Store, args: &Selection) -> Result<Vec<Descriptor>> {
    // Read the list before looking at the directory: in `ec2-create 3 | ec2-exec-remote
    // --from -` the descriptors are complete only once the producer has closed the pipe.
    let listed = match &args.from {
        Some(path) => {
            let (text, source) = read_from(path)?;
            Some((parse_id_list(&text, &source)?, source))
        }
        None => None,
    };
    if listed.as_ref().is_some_and(|(ids, _)| ids.is_empty()) {
        return Ok(vec![]); // an empty list selects nothing, and is not an error
    }
    let mut all = store.load_all()?;
    let held: Vec<u32> = all.iter().map(|d| d.index).collect();
    if let Some((ids, source)) = listed {
        for id in &ids {
            if !all.iter().any(|d| &d.id == id) {
                return Err(Error::input(format!(
                    "{id}: no descriptor in {} ({source})",
                    store.dir().display()
                )));
            }
        }
        all.retain(|d| ids.contains(&d.id));
    }
    if let Some(set) = &args.indexes {
        all.retain(|d| set.contains(&d.index));
        let missing: Vec<String> = set
            .iter()
            .filter(|i| !held.contains(i))
            .map(|i| format!("#{i}"))
            .collect();
        if !missing.is_empty() {
            // A typo in an index must not silently shrink the run to the rest.
            return Err(Error::input(format!(
                "--select: no instance {} in {} (indexes held: {})",
                missing.join(", "),
                store.dir().display(),
                fold_indexes(&held)
            )));
        }
    }
    if let Some(role) = &args.role {
        all.retain(|d| d.role() == Some(role.as_str()));
    }
    if args.is_explicit() && all.is_empty() {
        return Err(Error::input(format!(
            "the selection matches no instance in {}",
            store.dir().display()
        )));
    }
    Ok(all)
}

/// `1-3,5`: indexes folded into ranges (for messages).
pub fn fold_indexes(indexes: &[u32]) -> String {
    let v: Vec<u64> = indexes.iter().map(|&i| u64::from(i)).collect();
    if v.is_empty() {
        return "none".into();
    }
    fold_ranges(&v)
}

/// Numbers folded into sorted ranges, `1-3,5` (duplicates dropped; empty for none).
pub fn fold_ranges(numbers: &[u64]) -> String {
    let mut v = numbers.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(u64, u64)> = None;
    let range = |(a, b): (u64, u64)| {
        if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        }
    };
    for n in v {
        run = match run {
            Some((a, b)) if n == b + 1 => Some((a, n)),
            Some(r) => {
                out.push(range(r));
                Some((n, n))
            }
            None => Some((n, n)),
        };
    }
    out.extend(run.map(range));
    out.join(",")
}

/// Like [`select`], but no instance at all is an error too (for tools that run commands).
pub fn select_some(store: &Store, args: &Selection) -> Result<Vec<Descriptor>> {
    let v = select(store, args)?;
    if v.is_empty() && args.from.is_some() && args.indexes.is_none() && args.role.is_none() {
        // An empty list (a `--failed-to` file after a clean run): nothing to do, and a retry
        // loop under `set -e` goes on.
        return Err(Error::new(
            crate::error::Code::Ok,
            "--from lists no instance: nothing to do",
        ));
    }
    if v.is_empty() {
        return Err(Error::input(format!(
            "no instance descriptors in {} (run ec2-create there first)",
            store.dir().display()
        )));
    }
    // Two hosts answering as `1:` would be told apart by nobody: the same rule as ec2-status
    // (which lists both and exits 1), but a tool that acts on hosts stops before acting.
    if let Some((a, b)) = duplicate_index(&v) {
        return Err(Error::input(format!(
            "index {} is held by two descriptors: {} and {} (edited by hand?): give one its own index",
            a.index, a.id, b.id
        )));
    }
    Ok(v)
}

/// The first two descriptors that share an index (`v` is in index order).
pub fn duplicate_index(v: &[Descriptor]) -> Option<(&Descriptor, &Descriptor)> {
    v.windows(2)
        .find(|w| w[0].index == w[1].index)
        .map(|w| (&w[0], &w[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lists_and_ranges_parse() {
        assert_eq!(
            parse_indexes("1,3-5")
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec![1, 3, 4, 5]
        );
        assert!(parse_indexes("0").is_err());
        assert!(parse_indexes("5-3").is_err());
        assert!(parse_indexes("x").is_err());
    }

    #[test]
    fn id_lists_take_the_first_field_and_skip_blanks_and_comments() {
        let ids = parse_id_list(
            "i-0123abcd 127.0.0.4\n\n# c\ni-0123abce\ni-0123abcd\n",
            "--from -",
        )
        .unwrap();
        assert_eq!(ids, vec!["i-0123abcd", "i-0123abce"]);
        let e = parse_id_list("127.0.0.4: up\n", "--from -").unwrap_err();
        assert!(e.message.contains("line 1"), "{e}");
    }
}
