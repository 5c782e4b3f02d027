//! The crate's top-level modules form no import cycle (ARCHITECTURE.md,
//! "Modules"): each is read from `src/`, and every `crate::name` outside
//! comments and unit tests counts as an edge from the module (a file or a
//! folder under `src/`) to `name`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g = Graph::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src/");
        let first = rel.components().next().expect("a path");
        let top = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        // The crate root and the loom models (tests of two modules) are
        // not layers.
        if top == "lib" || top == "loom_models" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read a source file");
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let deps = g.entry(top.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let name: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() && name != top {
                    deps.insert(name);
                }
            }
        }
    }
    g
}

/// A cycle through `start`, if any (depth-first search).
fn cycle_from(g: &Graph, start: &str) -> Option<Vec<String>> {
    fn visit(g: &Graph, at: &str, start: &str, path: &mut Vec<String>) -> bool {
        for next in g.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if path.contains(next) {
                continue;
            }
            path.push(next.clone());
            if visit(g, next, start, path) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = vec![start.to_string()];
    visit(g, start, start, &mut path).then_some(path)
}

#[test]
fn top_level_modules_form_no_import_cycle() {
    let g = graph();
    assert!(g.contains_key("io") && g.contains_key("wait"), "{g:?}");
    for module in g.keys() {
        if let Some(cycle) = cycle_from(&g, module) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}
