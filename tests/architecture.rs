//! The code map in ARCHITECTURE.md is a checked contract: every `crate::` path in `src/`
//! (comments ignored) must name a module the map says its module may depend on, and the
//! top-level modules must not import each other in a cycle; no source file is over 900 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The library's top-level modules, from `src/lib.rs`.
fn top_modules() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(Path::new(ROOT).join("src/lib.rs")).expect("src/lib.rs");
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect()
}

/// One row of the code map: the source paths it covers and the modules they may use.
struct Row {
    paths: Vec<String>,
    /// `None`: the row allows everything (the binary).
    allowed: Option<BTreeSet<String>>,
}

fn code_map(modules: &BTreeSet<String>) -> Vec<Row> {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md")).expect("doc");
    let section = doc
        .split("## Code map")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a '## Code map' section");
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `src/")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (path_cell, deps_cell) = (cells[1], cells[cells.len() - 2]);
        let paths: Vec<String> = backticked(path_cell)
            .into_iter()
            .filter(|p| p.starts_with("src/"))
            .collect();
        let allowed = if deps_cell.contains("everything") {
            None
        } else {
            let mut set: BTreeSet<String> = backticked(deps_cell)
                .into_iter()
                .map(|d| d.split("::").next().unwrap_or_default().to_string())
                .filter(|d| modules.contains(d))
                .collect();
            if deps_cell.contains("their domain") {
                set.insert("(own)".into());
            }
            Some(set)
        };
        rows.push(Row { paths, allowed });
    }
    assert!(rows.len() > 10, "the code map has its rows");
    rows
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.trim_end_matches('/').to_string())
        .collect()
}

/// The row that governs a file: the most specific path that covers it.
fn row_for<'a>(rows: &'a [Row], file: &str) -> Option<(&'a Row, String)> {
    rows.iter()
        .flat_map(|r| r.paths.iter().map(move |p| (r, p)))
        .filter(|(_, p)| file == p.as_str() || file.starts_with(&format!("{p}/")))
        .max_by_key(|(_, p)| p.len())
        .map(|(r, p)| (r, p.clone()))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Source text with comments (line, doc and block) and string literals blanked out.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' && (i == 0 || b[i - 1] != b'\'') {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            let ch = src[i..].chars().next().expect("char");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The top-level modules a file names through `crate::` (including `use crate::{a, b::c}`).
fn imports(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    ',' if depth == 1 => item.clear(),
                    c if depth == 1 && (c.is_alphanumeric() || c == '_') => {
                        item.push(c);
                        if modules.contains(&item) {
                            found.insert(item.clone());
                        }
                    }
                    _ if depth == 1 && !item.is_empty() => item.push('\u{0}'),
                    _ => {}
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) {
                found.insert(name);
            }
        }
    }
    found
}

fn module_of(file: &str) -> String {
    let rest = file.strip_prefix("src/").expect("under src");
    rest.split('/')
        .next()
        .expect("segment")
        .trim_end_matches(".rs")
        .to_string()
}

#[test]
fn every_import_is_allowed_by_the_code_map() {
    let modules = top_modules();
    let rows = code_map(&modules);
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    let mut violations = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in files {
        let rel = path
            .strip_prefix(ROOT)
            .expect("under root")
            .to_string_lossy()
            .replace('\\', "/");
        let Some((row, _)) = row_for(&rows, &rel) else {
            if rel != "src/lib.rs" {
                violations.push(format!("{rel}: not in the code map"));
            }
            continue;
        };
        let code = code_only(&std::fs::read_to_string(&path).expect("read"));
        let own = module_of(&rel);
        for m in imports(&code, &modules) {
            if m == own {
                continue;
            }
            if modules.contains(&own) {
                graph.entry(own.clone()).or_default().insert(m.clone());
            }
            if let Some(allowed) = &row.allowed
                && !allowed.contains(&m)
            {
                violations.push(format!(
                    "{rel} uses crate::{m}, which its code map row does not allow"
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    assert_eq!(
        cycles(&graph),
        Vec::<String>::new(),
        "import cycles between top-level modules"
    );
}

/// Each cycle in the module graph, written `a → b → a`.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = BTreeSet::new();
    for start in graph.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    let mut cycle = path.clone();
                    // Report each cycle once, from its smallest member.
                    let min = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, m)| *m)
                        .map(|(i, _)| i);
                    cycle.rotate_left(min.unwrap_or(0));
                    cycle.push(cycle[0].clone());
                    found.insert(cycle.join(" → "));
                } else if !path.contains(next) && next > start {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    found.into_iter().collect()
}

#[test]
fn comments_and_strings_do_not_count_as_imports() {
    let modules: BTreeSet<String> = ["fx", "tax", "store"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let code = code_only(
        "// crate::fx\n/* crate::tax */ let s = \"crate::tax\";\nuse crate::{store::Store, fx};\n",
    );
    assert_eq!(
        imports(&code, &modules),
        ["fx", "store"].iter().map(|s| s.to_string()).collect()
    );
}

#[test]
fn a_cycle_is_reported_once_from_its_smallest_module() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in [
        ("store", "fx"),
        ("fx", "store"),
        ("fx", "model"),
        ("tax", "fx"),
    ] {
        graph.entry(from.into()).or_default().insert(to.into());
    }
    assert_eq!(cycles(&graph), vec!["fx → store → fx".to_string()]);
}

/// No source file grows past 900 lines (issue 11): a file that large holds more than one
/// concern, and is split by concern instead.
#[test]
fn no_source_file_is_over_900_lines() {
    const MAX_LINES: usize = 900;
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    let over: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).expect("source").lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(files.len() > 50, "the source tree is read");
    assert!(
        over.is_empty(),
        "over {MAX_LINES} lines; split by concern:\n{}",
        over.join("\n")
    );
}
