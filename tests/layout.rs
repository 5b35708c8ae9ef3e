//! The floor plan of `src/`, held as a test: imports run one way between the folders of the data
//! flow, the engine imports none of them (nor any I/O crate), no command but `serve` reaches into
//! the daemon, and no two modules import each other, directly or round a longer circle.
//!
//! It reads the source as text: every `crate::a::b` and `super::a` path outside comments is an
//! import of the longest module that path names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which top-level modules each one may import. Anything not listed may import nothing.
const ALLOWED: &[(&str, &[&str])] = &[
    ("engine", &[]),
    ("secret", &[]),
    ("telemetry", &[]),
    ("simulate", &[]),
    ("config", &["engine", "secret"]),
    ("prometheus", &["config", "engine", "secret"]),
    ("evaluation", &["config", "engine", "prometheus", "secret"]),
    ("alerting", &["config", "engine", "secret"]),
    ("report", &["config", "engine", "evaluation", "prometheus"]),
    (
        "server",
        &[
            "alerting",
            "config",
            "engine",
            "evaluation",
            "prometheus",
            "report",
            "secret",
        ],
    ),
    (
        "commands",
        &[
            "alerting",
            "config",
            "engine",
            "evaluation",
            "prometheus",
            "report",
            "secret",
            "server",
            "simulate",
            "telemetry",
        ],
    ),
];

/// The only command that may import the daemon: the others evaluate through `evaluation`.
const SERVER_COMMAND: &str = "commands::serve";

/// Crates and std modules that do I/O; the engine is handed data and answers with data.
const IO_IN_ENGINE: &[&str] = &[
    "tokio::",
    "reqwest::",
    "axum::",
    "hyper::",
    "prometheus_http_query::",
    "std::fs",
    "std::net",
    "std::io",
];

type Module = Vec<String>;

struct Source {
    module: Module,
    file: PathBuf,
    /// The text without comments, which may name modules in doc links.
    code: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
        .into_iter()
        .filter(|f| !f.ends_with("main.rs"))
        .map(|file| {
            let relative = file.strip_prefix(&root).unwrap().with_extension("");
            let mut module: Module = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            let code = std::fs::read_to_string(&file)
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            Source { module, file, code }
        })
        .collect()
}

/// The paths written after `prefix::`, e.g. `engine::decide::Verdict` for `crate::`.
fn paths_after<'a>(code: &'a str, prefix: &'a str) -> impl Iterator<Item = Vec<&'a str>> + 'a {
    code.match_indices(prefix).filter_map(move |(i, _)| {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            return None;
        }
        let rest = &code[i + prefix.len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        Some(rest[..end].split("::").filter(|s| !s.is_empty()).collect())
    })
}

/// Every module each module imports, resolved to the longest known module the path names.
fn imports(sources: &[Source]) -> BTreeMap<Module, BTreeSet<Module>> {
    let known: BTreeSet<&Module> = sources.iter().map(|s| &s.module).collect();
    let resolve = |path: Vec<String>| -> Option<Module> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|m| known.contains(m))
    };
    let mut graph = BTreeMap::new();
    for s in sources {
        assert!(
            !s.code.contains("crate::{") && !s.code.contains("super::{"),
            "{}: write one `use` per module (`use crate::a::b::{{X, Y}}`), so that imports can be read",
            s.file.display()
        );
        // Tests sit at the end of a file, where `super::` is the file itself.
        let (code, tests) = s
            .code
            .split_once("#[cfg(test)]")
            .unwrap_or((s.code.as_str(), ""));
        let parent: Module = s.module[..s.module.len().saturating_sub(1)].to_vec();
        let relative_to = |base: &Module, path: &[&str]| {
            let mut full = base.clone();
            full.extend(path.iter().map(|p| p.to_string()));
            full
        };
        let mut targets = BTreeSet::new();
        for path in paths_after(&s.code, "crate::") {
            targets.extend(resolve(relative_to(&Vec::new(), &path)));
        }
        for path in paths_after(code, "super::") {
            targets.extend(resolve(relative_to(&parent, &path)));
        }
        for path in paths_after(tests, "super::") {
            targets.extend(resolve(relative_to(&s.module, &path)));
        }
        // `use child::Item;` in a folder's mod.rs names a child without `self::`.
        for line in code.lines() {
            let line = line.trim_start().trim_start_matches("pub ");
            if let Some(path) = line.strip_prefix("use ") {
                let path: Vec<&str> = path.split("::").collect();
                let child = relative_to(&s.module, &path[..path.len() - 1]);
                if path.len() > 1 && known.contains(&child) {
                    targets.insert(child);
                }
            }
        }
        targets.retain(|t| t != &s.module && !t.is_empty());
        graph.insert(s.module.clone(), targets);
    }
    graph
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn folders_import_only_downwards() {
    let graph = imports(&sources());
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (module, targets) in &graph {
        let Some(top) = module.first() else { continue };
        let may = allowed
            .get(top.as_str())
            .unwrap_or_else(|| panic!("tests/layout.rs: say what `{top}` may import in ALLOWED"));
        for t in targets {
            let other = &t[0];
            if other != top && !may.contains(&other.as_str()) {
                wrong.push(format!("{} imports {}", name(module), name(t)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the floor plan:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn only_serve_starts_the_daemon() {
    let graph = imports(&sources());
    let wrong: Vec<String> = graph
        .iter()
        .filter(|(m, _)| m.first().is_some_and(|m| m == "commands") && name(m) != SERVER_COMMAND)
        .flat_map(|(m, targets)| {
            targets
                .iter()
                .filter(|t| t[0] == "server")
                .map(move |t| format!("{} imports {}", name(m), name(t)))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "only {SERVER_COMMAND} may import the server:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_engine_does_no_io() {
    let mut wrong = Vec::new();
    for s in sources()
        .iter()
        .filter(|s| s.module.first().is_some_and(|m| m == "engine"))
    {
        for io in IO_IN_ENGINE {
            if s.code.contains(io) {
                wrong.push(format!("{} uses {io}", s.file.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_import_circles() {
    let graph = imports(&sources());
    // Depth-first search; a module met again while still on the path closes a circle.
    fn visit<'a>(
        m: &'a Module,
        graph: &'a BTreeMap<Module, BTreeSet<Module>>,
        path: &mut Vec<&'a Module>,
        done: &mut BTreeSet<&'a Module>,
    ) -> Option<String> {
        if let Some(i) = path.iter().position(|p| *p == m) {
            let circle: Vec<String> = path[i..].iter().chain([&m]).map(|m| name(m)).collect();
            return Some(circle.join(" -> "));
        }
        if !done.insert(m) {
            return None;
        }
        path.push(m);
        for t in graph.get(m).into_iter().flatten() {
            if let Some(circle) = visit(t, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(circle) = visit(m, &graph, &mut Vec::new(), &mut done) {
            panic!("import circle: {circle}");
        }
    }
}

#[test]
fn the_checker_sees_imports() {
    // Guards the guard: the checker must find the imports it is meant to police.
    let graph = imports(&sources());
    let of = |m: &str| &graph[&m.split("::").map(String::from).collect::<Module>()];
    assert!(of("server::scheduler").contains(&vec!["engine".into(), "snapshot".into()]));
    assert!(of("alerting::delivery").contains(&vec!["alerting".into(), "book".into()]));
    assert!(of("engine::decide").contains(&vec!["engine".into(), "evaluate".into()]));
    assert!(of("commands::serve").contains(&vec!["server".into()]));
}
