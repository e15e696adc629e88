//! The crate's dependency rules, checked on its source: each layer uses only the layers
//! below it, no module imports (`crate::...`) one that imports it back, and nothing
//! below the HTTP layer names HTTP, Lambda event or AWS SDK types. Test code is exempt.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules each top-level module may use.
const ALLOWED: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("error", &[]),
    ("telemetry", &[]),
    ("ports", &["domain", "error"]),
    ("app", &["domain", "error", "ports"]),
    ("aws", &["domain", "error", "ports"]),
    ("http", &["domain", "error", "ports", "app"]),
    (
        "events",
        &["domain", "error", "ports", "app", "http", "aws"],
    ),
    (
        "wiring",
        &["domain", "error", "ports", "app", "aws", "http"],
    ),
];

/// What the core (domain, use cases, ports, their error) must not name.
const OUTSIDE_WORLD: &[&str] = &[
    "lambda_http",
    "lambda_runtime",
    "aws_lambda_events",
    "http::",
    "aws_sdk_",
    "aws_config",
    "If-Match",
];
const CORE: &[&str] = &["domain", "app", "ports", "error"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `app/connection/mod.rs` -> `app::connection`; `None` for test-only files and bins.
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).ok()?;
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    let last = parts.last()?.as_str();
    if parts[0] == "bin" || last == "tests" || last == "fakes" || parts.iter().any(|p| p == "tests")
    {
        return None;
    }
    let keep = match last {
        "mod" | "lib" => &parts[..parts.len() - 1],
        _ => &parts[..],
    };
    Some(keep.join("::"))
}

/// The file's code without comments and without its `#[cfg(test)]` tail (tests sit at
/// the end of a file).
fn production_code(text: &str) -> String {
    let code = text.find("\n#[cfg(test)]").map_or(text, |i| &text[..i]);
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b::...` path in the code, as segment lists, with `use crate::{a, b}`
/// groups expanded one level.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `integrations_crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let segs = segments(item.trim());
                if !segs.is_empty() {
                    out.push(segs);
                }
            }
        } else {
            out.push(segments(rest));
        }
    }
    out
}

fn segments(s: &str) -> Vec<String> {
    let mut segs = Vec::new();
    let mut rest = s;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        segs.push(rest[..end].to_owned());
        match rest[end..].strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    segs
}

struct Crate {
    modules: BTreeSet<String>,
    /// module -> (modules it names, its production code)
    uses: BTreeMap<String, (BTreeSet<String>, String)>,
}

fn read_crate() -> Crate {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut code_of = BTreeMap::new();
    for f in &files {
        if let Some(m) = module_of(f) {
            let text = std::fs::read_to_string(f).expect("readable source");
            code_of.insert(m, production_code(&text));
        }
    }
    let modules: BTreeSet<String> = code_of.keys().cloned().collect();
    let mut uses = BTreeMap::new();
    for (m, code) in code_of {
        let mut targets = BTreeSet::new();
        for path in crate_paths(&code) {
            // The longest prefix of the path that is a module of the crate.
            let target = (1..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|p| modules.contains(p));
            if let Some(t) = target {
                targets.insert(t);
            }
        }
        uses.insert(m, (targets, code));
    }
    Crate { modules, uses }
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

fn related(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
}

#[test]
fn each_layer_uses_only_the_layers_below_it() {
    let c = read_crate();
    assert!(
        c.modules.contains("http::routes"),
        "the scan finds the modules"
    );
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (m, (targets, _)) in &c.uses {
        let Some(may) = allowed.get(top(m)) else {
            continue; // the crate root
        };
        for t in targets {
            let layer = top(t);
            if layer != top(m) && !may.contains(&layer) {
                wrong.push(format!("{m} uses {t}"));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let c = read_crate();
    let mut cycles = Vec::new();
    for (a, (targets, _)) in &c.uses {
        for b in targets {
            if related(a, b) {
                continue;
            }
            if let Some((back, _)) = c.uses.get(b) {
                if back.iter().any(|t| related(t, a)) && a < b {
                    cycles.push(format!("{a} <-> {b}"));
                }
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_core_names_no_http_lambda_or_sdk_type() {
    let c = read_crate();
    let mut found = Vec::new();
    for (m, (_, code)) in &c.uses {
        if !CORE.contains(&top(m)) {
            continue;
        }
        for word in OUTSIDE_WORLD {
            // Comments may explain what the outside world does; code may not name it.
            if code.contains(word) {
                found.push(format!("{m} names {word}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the core knows the outside:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scanner_reads_paths_and_groups() {
    let paths = crate_paths(
        "use crate::error::Error;\nuse crate::{domain::Caller, ports};\nlet x = my_crate::a;",
    );
    assert_eq!(
        paths,
        vec![
            vec!["error".to_owned(), "Error".to_owned()],
            vec!["domain".to_owned(), "Caller".to_owned()],
            vec!["ports".to_owned()],
        ]
    );
    assert!(related("app", "app::connection"));
    assert!(!related("app", "aws"));
}
