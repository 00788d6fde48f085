//! The folders of `framework/src` depend on each other in one direction
//! only: this test reads every source file, collects each folder's
//! references to the others (`use crate::…`, `crate::x::…` paths, and
//! `super::` paths that climb out of a folder), and fails on any edge the
//! table below does not allow. The table itself must be acyclic, so the
//! folder graph is too; the one cycle the design has (protocols call the
//! reactor and the reactor calls protocols) stays inside `reactor/`.
//!
//! Run it alone with `cargo test -p shardloop --test it layering -- --nocapture`
//! to print the folder graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each folder (or top-level file) of `framework/src`, and what it may use.
/// Lower folders first; a folder may only name folders listed for it.
const ALLOWED: &[(&str, &[&str])] = &[
    ("limit", &[]),
    ("api", &["limit"]),
    ("error", &["api"]),
    ("sync", &["api"]),
    ("net", &["api"]),
    ("reactor", &["api", "error", "sync", "net", "limit"]),
    ("tls", &["api", "error", "net", "reactor"]),
    ("proxy", &["api", "error", "net", "reactor"]),
    ("framing", &["api", "error", "net", "reactor", "tls"]),
    (
        "task",
        &["api", "error", "sync", "net", "reactor", "framing"],
    ),
    ("endpoint", &["api", "error", "net", "reactor", "tls"]),
    (
        "client",
        &[
            "api", "sync", "net", "reactor", "task", "framing", "tls", "endpoint",
        ],
    ),
    (
        "http",
        &[
            "api", "error", "sync", "net", "reactor", "task", "framing", "tls", "endpoint",
            "client", "limit",
        ],
    ),
    (
        "runtime",
        &[
            "api", "sync", "net", "reactor", "task", "tls", "proxy", "framing", "endpoint",
            "client", "error", "http",
        ],
    ),
    (
        "testing",
        &[
            "api", "sync", "net", "reactor", "task", "tls", "proxy", "framing", "endpoint",
            "client", "error", "runtime", "http",
        ],
    ),
];

fn src_dir() -> PathBuf {
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

/// The module path of a file relative to `src` (`reactor/io.rs` →
/// `["reactor", "io"]`; `net/endpoint/mod.rs` → `["net", "endpoint"]`).
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// The text with comments and string literals blanked out, so a path in a
/// doc comment or a URL in a string is not taken for a dependency.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r'
            && matches!(b.get(i + 1), Some(b'#') | Some(b'"'))
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            let mut hashes = 0;
            let mut j = i + 1;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"' && b[j + 1..].iter().take(hashes).all(|&c| c == b'#') {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            // A character literal such as '"' (a lifetime has no closing quote).
            out.push_str("' '");
            i += 3;
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            let mut j = i + 2;
            while j < b.len() && b[j] != b'\'' {
                j += 1;
            }
            out.push_str("' '");
            i = j + 1;
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn ident_at(s: &str, at: usize) -> Option<&str> {
    let rest = &s[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// The first path segments below the crate root that `code` names.
fn crate_refs(code: &str, module: &[String]) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let compact: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
    let compact = compact.replace(":: ", "::").replace(" ::", "::");
    let mut starts: Vec<(usize, usize)> = Vec::new(); // (position after the prefix, levels up)
    for (pos, _) in compact.match_indices("crate::") {
        let before = compact[..pos].chars().last();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        starts.push((pos + "crate::".len(), usize::MAX));
    }
    for (pos, _) in compact.match_indices("super::") {
        let before = compact[..pos].chars().last();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut up = 1;
        let mut at = pos + "super::".len();
        while compact[at..].starts_with("super::") {
            up += 1;
            at += "super::".len();
        }
        starts.push((at, up));
    }
    for (at, up) in starts {
        // The absolute path this reference starts from.
        let base: Vec<String> = if up == usize::MAX {
            Vec::new()
        } else if up <= module.len() {
            module[..module.len() - up].to_vec()
        } else {
            continue;
        };
        if !base.is_empty() {
            // Inside a folder, the first segment is already known.
            refs.insert(base[0].clone());
            continue;
        }
        if compact[at..].starts_with('{') {
            // A use tree: the names at depth one.
            let mut depth = 0;
            let mut expect_name = true;
            let mut i = at;
            let bytes = compact.as_bytes();
            while i < bytes.len() {
                match bytes[i] {
                    b'{' => {
                        depth += 1;
                        expect_name = depth == 1;
                    }
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b',' if depth == 1 => expect_name = true,
                    b' ' => {}
                    _ if expect_name && depth == 1 => {
                        if let Some(name) = ident_at(&compact, i) {
                            refs.insert(name.to_string());
                            i += name.len();
                            expect_name = false;
                            continue;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        } else if let Some(name) = ident_at(&compact, at) {
            refs.insert(name.to_string());
        }
    }
    refs
}

/// Folder → folders it names (only names that are folders or top-level files).
fn folder_graph() -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let known: BTreeSet<String> = ALLOWED.iter().map(|(f, _)| f.to_string()).collect();
    let mut graph: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let module = module_path(rel);
        let Some(folder) = module.first() else {
            continue; // lib.rs: the crate root re-exports everything.
        };
        let code = code_only(&std::fs::read_to_string(&file).unwrap());
        for name in crate_refs(&code, &module) {
            if &name != folder && known.contains(&name) {
                graph
                    .entry(folder.clone())
                    .or_default()
                    .entry(name)
                    .or_default()
                    .push(rel.display().to_string());
            }
        }
    }
    graph
}

#[test]
fn the_allowed_table_is_acyclic_and_lists_every_folder() {
    let order: Vec<&str> = ALLOWED.iter().map(|(f, _)| *f).collect();
    for (i, (folder, deps)) in ALLOWED.iter().enumerate() {
        for d in *deps {
            let at = order.iter().position(|o| o == d);
            assert!(
                at.is_some_and(|at| at < i),
                "{folder} may use {d}, which must come before it in the table"
            );
        }
    }
    let src = src_dir();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "lib" {
            continue;
        }
        assert!(
            order.contains(&name.as_str()),
            "framework/src/{name} is in no layer of the table: add it where it belongs"
        );
    }
}

#[test]
fn folders_depend_in_one_direction() {
    let graph = folder_graph();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    println!("folder graph of framework/src (folder -> folders it names: files):");
    for (folder, deps) in &graph {
        for (dep, files) in deps {
            println!("  {folder} -> {dep}: {}", files.join(", "));
            let ok = allowed
                .get(folder.as_str())
                .is_some_and(|list| list.contains(&dep.as_str()));
            if !ok {
                wrong.push(format!("{folder} -> {dep} (in {})", files.join(", ")));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the allowed direction (see ARCHITECTURE.md):\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn the_scanner_sees_through_comments_strings_and_use_trees() {
    let code = code_only(
        "use crate::{api::X, net::{a, b}, reactor};\n// crate::runtime::Y\nlet s = \"crate::tls\";\nlet c = '\"'; crate::udp::Z; r#\"crate::proxy\"#;",
    );
    let refs = crate_refs(&code, &["client".to_string()]);
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    assert_eq!(refs, ["api", "net", "reactor", "udp"]);
    let up = crate_refs(
        &code_only("use super::super::x::Y;"),
        &["a".into(), "b".into()],
    );
    assert_eq!(
        up.into_iter().collect::<Vec<_>>(),
        ["x"],
        "super::super from a/b is the root"
    );
    let inside = crate_refs(
        &code_only("use super::io;"),
        &["reactor".into(), "shard".into()],
    );
    assert_eq!(inside.into_iter().collect::<Vec<_>>(), ["reactor"]);
}
