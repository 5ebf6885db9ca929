//! The tree reads like a map, and stays one: the library's rooms (the folders and files directly
//! under `src/`) depend on each other without a cycle, every folder says what it holds, and the
//! README's layout table has a row for every folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The library's rooms: every folder and `.rs` file directly under `src/`, but the binary's.
fn rooms() -> BTreeSet<String> {
    std::fs::read_dir(src())
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_owned())
        .filter(|r| !matches!(r.as_str(), "main" | "cli" | "lib"))
        .collect()
}

/// Room -> the rooms its code (not its comments, not its tests) names through `crate::`.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let rooms = rooms();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src()).unwrap();
        let first = rel.iter().next().unwrap().to_str().unwrap();
        let room = first.strip_suffix(".rs").unwrap_or(first).to_owned();
        if !rooms.contains(&room) || file.file_name().unwrap() == "tests.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests come last in a file; they may reach anywhere to build their inputs.
        let code = text.split("#[cfg(test)]").next().unwrap();
        let entry = deps.entry(room.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let name: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if name != room && rooms.contains(&name) {
                    entry.insert(name);
                }
            }
        }
    }
    deps
}

/// A cycle in `deps`, if there is one.
fn cycle(deps: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        room: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|r| r == room) {
            let mut c = path[at..].to_vec();
            c.push(room.to_owned());
            return Some(c);
        }
        if done.contains(room) {
            return None;
        }
        path.push(room.to_owned());
        for next in deps.get(room).into_iter().flatten() {
            if let Some(c) = visit(next, deps, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(room.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    deps.keys()
        .find_map(|r| visit(r, deps, &mut Vec::new(), &mut done))
}

#[test]
fn the_rooms_depend_on_each_other_without_a_cycle() {
    let deps = dependencies();
    assert!(deps.len() > 10, "the scan found too few rooms: {deps:?}");
    assert_eq!(cycle(&deps), None, "{deps:#?}");
    // The bottom of the tree stays at the bottom.
    assert!(
        deps.get("reference").is_none_or(BTreeSet::is_empty),
        "{deps:#?}"
    );
    // The webhook reaches git, the API server and the rollout report only through the audit.
    for far in ["git", "cluster", "rollout"] {
        assert!(!deps["admission"].contains(far), "admission uses {far}");
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let deps: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        cycle(&deps),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

#[test]
fn every_folder_says_what_it_holds_and_has_a_readme_row() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for room in rooms() {
        let dir = src().join(&room);
        if !dir.is_dir() {
            continue;
        }
        let head = std::fs::read_to_string(dir.join("mod.rs")).unwrap();
        assert!(
            head.starts_with("//! "),
            "src/{room}/mod.rs does not open with a doc comment"
        );
        assert!(
            readme.contains(&format!("| `src/{room}/` |")),
            "README.md's layout table has no row for src/{room}/"
        );
    }
}
