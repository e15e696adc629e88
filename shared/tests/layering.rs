//! The crate's dependency rules, checked on its source: each layer uses only the layers
//! below it, no module imports (`crate::...`, `super::...`, `self::...`) one that imports
//! it back, and nothing below the HTTP layer names HTTP, Lambda event or AWS SDK types.
//! Test code is exempt: items annotated `#[cfg(test)]` (wherever they sit in a file) and
//! the files only such items declare. Everything else is read, to the end of each file.

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

/// A crate's sources: path relative to `src/` (`lib.rs`, `app/mod.rs`) -> text.
type Sources = BTreeMap<String, String>;

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

/// Every `.rs` file under `src/`, binaries (`src/bin/`, their own crates) left out.
fn read_sources() -> Sources {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut sources = Sources::new();
    for f in files {
        let rel = f.strip_prefix(&root).expect("under src");
        let rel: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into()).collect();
        if rel[0] == "bin" {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("readable source");
        sources.insert(rel.join("/"), text);
    }
    sources
}

// ---- Lexing: comments, literals and test-only items blanked, offsets and lines kept ----

/// A file as the checks read it. Both texts have the source's byte offsets and lines:
/// `code` is the source with comments and test-only items blanked (string literals kept,
/// since the core must not spell `If-Match` either); `skeleton` has, in addition, the
/// insides of string and char literals blanked, so brackets balance and paths are real.
struct Lexed {
    code: String,
    skeleton: String,
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn blank(text: &mut [u8], from: usize, to: usize) {
    let to = to.min(text.len());
    for b in &mut text[from..to] {
        if *b != b'\n' {
            *b = b' ';
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// Blanks comments (in both texts) and the insides of literals (in the skeleton).
fn lex(file: &str, text: &str) -> Lexed {
    let b = text.as_bytes();
    let mut code = b.to_vec();
    let mut skel = b.to_vec();
    let mut i = 0;
    while i < b.len() {
        let after_ident = i > 0 && is_ident(b[i - 1]);
        if b[i..].starts_with(b"//") {
            let end = text[i..].find('\n').map_or(b.len(), |n| i + n);
            blank(&mut code, i, end);
            blank(&mut skel, i, end);
            i = end;
        } else if b[i..].starts_with(b"/*") {
            let (mut depth, mut j) = (1, i + 2);
            while depth > 0 {
                assert!(j < b.len(), "{file}:{}: unclosed comment", line_of(text, i));
                if b[j..].starts_with(b"/*") {
                    (depth, j) = (depth + 1, j + 2);
                } else if b[j..].starts_with(b"*/") {
                    (depth, j) = (depth - 1, j + 2);
                } else {
                    j += 1;
                }
            }
            blank(&mut code, i, j);
            blank(&mut skel, i, j);
            i = j;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            assert!(j < b.len(), "{file}:{}: unclosed string", line_of(text, i));
            blank(&mut skel, i + 1, j);
            i = j + 1;
        } else if !after_ident && (b[i] == b'r' || b[i..].starts_with(b"br")) {
            // A raw string `r#"..."#` (or `br"..."`); `r#ident` and plain words are not.
            let r = if b[i] == b'r' { i } else { i + 1 };
            let hashes = b[r + 1..].iter().take_while(|&&c| c == b'#').count();
            if b.get(r + 1 + hashes) != Some(&b'"') {
                i += 1;
                continue;
            }
            let open = r + 1 + hashes;
            let close = format!("\"{}", "#".repeat(hashes));
            let end = text[open + 1..]
                .find(&close)
                .map(|n| open + 1 + n)
                .unwrap_or_else(|| panic!("{file}:{}: unclosed string", line_of(text, i)));
            blank(&mut skel, open + 1, end);
            i = end + close.len();
        } else if b[i] == b'\'' {
            // A char literal (`'{'`, `'\''`, `'é'`) or a lifetime (`'a`).
            if b.get(i + 1) == Some(&b'\\') {
                let end = text[i + 3..]
                    .find('\'')
                    .map(|n| i + 3 + n)
                    .unwrap_or_else(|| panic!("{file}:{}: unclosed char", line_of(text, i)));
                blank(&mut skel, i + 1, end);
                i = end + 1;
            } else {
                let width = text[i + 1..].chars().next().map_or(0, char::len_utf8);
                if b.get(i + 1 + width) == Some(&b'\'') {
                    blank(&mut skel, i + 1, i + 1 + width);
                    i += 2 + width;
                } else {
                    i += 1;
                }
            }
        } else {
            i += 1;
        }
    }
    let utf8 = |v: Vec<u8>| String::from_utf8(v).expect("blanking keeps UTF-8");
    Lexed {
        code: utf8(code),
        skeleton: utf8(skel),
    }
}

/// The index of the bracket closing the one at `open`, in a skeleton.
fn closing(file: &str, skel: &str, open: usize) -> usize {
    let b = skel.as_bytes();
    let mut depth = 0usize;
    for (j, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    panic!("{file}:{}: unbalanced brackets", line_of(skel, open))
}

/// Whether an attribute's inside (whitespace removed) is `cfg(test)` or `cfg(all(.., test, ..))`.
fn is_test_cfg(attr: &str) -> bool {
    let attr: String = attr.chars().filter(|c| !c.is_whitespace()).collect();
    attr == "cfg(test)"
        || attr
            .strip_prefix("cfg(all(")
            .and_then(|a| a.strip_suffix("))"))
            .is_some_and(|a| a.split(',').any(|p| p == "test"))
}

const ITEM_WORDS: &[&str] = &[
    "fn",
    "mod",
    "use",
    "impl",
    "struct",
    "enum",
    "trait",
    "type",
    "const",
    "static",
    "union",
    "extern",
    "unsafe",
    "async",
    "macro_rules",
    "let",
];

/// Where the item (or statement, field, variant) starting at `from` ends: after its `;`,
/// after its `{ ... }` block, after its `,` (fields and variants), or before the bracket
/// closing what encloses it.
fn item_end(file: &str, skel: &str, from: usize) -> usize {
    let b = skel.as_bytes();
    let mut j = from;
    loop {
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if b[j..].starts_with(b"#[") {
            j = closing(file, skel, j + 1) + 1;
        } else {
            break;
        }
    }
    let mut first = ident_at(&skel[j..]);
    if first == "pub" {
        let rest = skel[j + 3..].trim_start();
        let rest = if rest.starts_with('(') {
            let open = skel.len() - rest.len();
            &skel[closing(file, skel, open) + 1..]
        } else {
            rest
        };
        first = ident_at(rest.trim_start());
    }
    let is_item = ITEM_WORDS.contains(&first);
    while j < b.len() {
        match b[j] {
            b'(' | b'[' => j = closing(file, skel, j) + 1,
            b'{' => return closing(file, skel, j) + 1,
            b';' => return j + 1,
            b',' if !is_item => return j + 1,
            b')' | b']' | b'}' => return j,
            _ => j += 1,
        }
    }
    j
}

/// The byte ranges of test-only code: items under `#[cfg(test)]`, and the block (or the
/// whole file) holding an inner `#![cfg(test)]`.
fn test_only_ranges(file: &str, skel: &str) -> Vec<(usize, usize)> {
    let b = skel.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(k) = skel[i..].find('#') {
        let at = i + k;
        let inner = b[at + 1..].starts_with(b"![");
        let open = if inner { at + 2 } else { at + 1 };
        if b.get(open) != Some(&b'[') {
            i = at + 1;
            continue;
        }
        let close = closing(file, skel, open);
        if !is_test_cfg(&skel[open + 1..close]) {
            i = close + 1;
        } else if inner {
            // The innermost block around the attribute, or the file.
            let mut depth = 0usize;
            let mut start = 0;
            for j in (0..at).rev() {
                match b[j] {
                    b')' | b']' | b'}' => depth += 1,
                    b'(' | b'[' | b'{' if depth == 0 => {
                        start = j + 1;
                        break;
                    }
                    b'(' | b'[' | b'{' => depth -= 1,
                    _ => {}
                }
            }
            let end = if start == 0 {
                skel.len()
            } else {
                closing(file, skel, start - 1)
            };
            out.push((start, end));
            i = end;
        } else {
            let end = item_end(file, skel, close + 1);
            out.push((at, end));
            i = end;
        }
    }
    out
}

/// The file with comments blanked and, unless `keep_tests`, its test-only code too.
fn production(file: &str, text: &str, keep_tests: bool) -> Lexed {
    let lexed = lex(file, text);
    if keep_tests {
        return lexed;
    }
    let (mut code, mut skel) = (lexed.code.into_bytes(), lexed.skeleton.into_bytes());
    let skel_text = String::from_utf8(skel.clone()).expect("UTF-8");
    for (from, to) in test_only_ranges(file, &skel_text) {
        blank(&mut code, from, to);
        blank(&mut skel, from, to);
    }
    let utf8 = |v: Vec<u8>| String::from_utf8(v).expect("blanking keeps UTF-8");
    Lexed {
        code: utf8(code),
        skeleton: utf8(skel),
    }
}

// ---- Modules: the tree `mod` declarations build, from `lib.rs` ----

/// Every word `word` in a skeleton (not part of a longer identifier), by offset.
fn words<'a>(skel: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    skel.match_indices(word).map(|(i, _)| i).filter(move |&i| {
        let b = skel.as_bytes();
        (i == 0 || !is_ident(b[i - 1])) && b.get(i + word.len()).is_none_or(|&c| !is_ident(c))
    })
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// A `mod name;` or `mod name { ... }` in a skeleton.
struct ModDecl {
    name: String,
    at: usize,
    /// The braces' offsets for an inline module.
    body: Option<(usize, usize)>,
}

fn mod_decls(file: &str, skel: &str) -> Vec<ModDecl> {
    let mut out = Vec::new();
    for at in words(skel, "mod") {
        let rest = skel[at + 3..].trim_start();
        let name = ident_at(rest);
        if name.is_empty() {
            continue;
        }
        let after = rest[name.len()..].trim_start();
        let body = if after.starts_with('{') {
            let open = skel.len() - after.len();
            Some((open, closing(file, skel, open)))
        } else if after.starts_with(';') {
            None
        } else {
            continue;
        };
        out.push(ModDecl {
            name: name.trim_start_matches("r#").to_owned(),
            at,
            body,
        });
    }
    out
}

/// The inline modules (`mod a { mod b { ... } }`) around an offset: `["a", "b"]`.
fn inline_chain(decls: &[ModDecl], offset: usize) -> Vec<String> {
    decls
        .iter()
        .filter(|d| {
            d.body
                .is_some_and(|(open, close)| open < offset && offset < close)
        })
        .map(|d| d.name.clone())
        .collect()
}

/// The file defining module `name` declared in `file` inside inline modules `chain`:
/// `x/mod.rs` and `lib.rs` hold their children beside them, `x.rs` in `x/`.
fn child_file(sources: &Sources, file: &str, chain: &[String], name: &str) -> String {
    let (dir, base) = file.rsplit_once('/').unwrap_or(("", file));
    let mut parts: Vec<&str> = if dir.is_empty() { vec![] } else { vec![dir] };
    let stem = base.trim_end_matches(".rs");
    if !matches!(base, "mod.rs" | "lib.rs" | "main.rs") {
        parts.push(stem);
    }
    parts.extend(chain.iter().map(String::as_str));
    let prefix = parts.iter().map(|p| format!("{p}/")).collect::<String>();
    let candidates = [
        format!("{prefix}{name}.rs"),
        format!("{prefix}{name}/mod.rs"),
    ];
    candidates
        .iter()
        .find(|c| sources.contains_key(*c))
        .cloned()
        .unwrap_or_else(|| {
            panic!("{file} declares `mod {name};`, but neither {candidates:?} exists")
        })
}

/// A file of the module tree: the module it defines, and its text as the checks read it.
struct FileModule {
    module: Vec<String>,
    file: String,
    lexed: Lexed,
    decls: Vec<ModDecl>,
}

/// The files reachable from `lib.rs` through `mod` declarations, test ones or not.
fn module_tree(sources: &Sources, keep_tests: bool) -> Vec<FileModule> {
    let mut out = Vec::new();
    let mut todo = vec![(Vec::new(), "lib.rs".to_owned())];
    while let Some((module, file)) = todo.pop() {
        let text = sources.get(&file).unwrap_or_else(|| panic!("no {file}"));
        let lexed = production(&file, text, keep_tests);
        let decls = mod_decls(&file, &lexed.skeleton);
        for d in decls.iter().filter(|d| d.body.is_none()) {
            let chain = inline_chain(&decls, d.at);
            let mut child = module.clone();
            child.extend(chain.iter().cloned());
            child.push(d.name.clone());
            todo.push((child, child_file(sources, &file, &chain, &d.name)));
        }
        out.push(FileModule {
            module,
            file,
            lexed,
            decls,
        });
    }
    out
}

// ---- Paths: every `crate::`, `super::` and `self::` path, made absolute ----

/// Expands the use tree (or plain path) at the start of `s` into full paths under
/// `prefix`: `a::{b, c::{self, d}}` -> `a::b`, `a::c`, `a::c::d`. Returns the bytes read.
fn expand(s: &str, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix.to_vec();
    let mut i = 0;
    loop {
        i = s.len() - s[i..].trim_start().len();
        let word = ident_at(&s[i..]);
        if word.is_empty() {
            if s[i..].starts_with('{') {
                i += 1;
                loop {
                    i = s.len() - s[i..].trim_start().len();
                    if s[i..].starts_with('}') {
                        return i + 1;
                    }
                    if s[i..].starts_with(',') {
                        i += 1;
                        continue;
                    }
                    let n = expand(&s[i..], &path, out);
                    if n == 0 {
                        return i;
                    }
                    i += n;
                    let rest = s[i..].trim_start();
                    if let Some(alias) = rest.strip_prefix("as") {
                        let alias = alias.trim_start();
                        i = s.len() - alias.len() + ident_at(alias).len();
                    }
                }
            }
            if s[i..].starts_with('*') {
                i += 1;
            }
            out.push(path);
            return i;
        }
        i += word.len();
        match word {
            "self" => {}
            "super" => {
                path.pop();
            }
            _ => path.push(word.to_owned()),
        }
        if s[i..].starts_with("::") {
            i += 2;
        } else {
            out.push(path);
            return i;
        }
    }
}

/// A path the code names, made absolute (segments from the crate root).
#[derive(Debug, PartialEq)]
struct Named {
    path: Vec<String>,
    offset: usize,
}

/// Every path in the skeleton starting with `crate::`, `super::` or `self::`, resolved
/// against the module at its offset (`module` plus the inline modules around it); use
/// groups are expanded. A `super` above the crate root is an error.
fn named_paths(file: &str, skel: &str, module: &[String], decls: &[ModDecl]) -> Vec<Named> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < skel.len() {
        let Some(k) = skel[i..].find("::") else { break };
        let sep = i + k;
        i = sep + 2;
        let start = skel[..sep].trim_end_matches(|c: char| c.is_alphanumeric() || c == '_');
        let word = &skel[start.len()..sep];
        if !matches!(word, "crate" | "super" | "self") || start.ends_with(':') {
            continue; // `x::super` cannot start a path; `a::b` is not ours to resolve
        }
        let mut base: Vec<String> = match word {
            "crate" => Vec::new(),
            _ => {
                let mut m = module.to_vec();
                m.extend(inline_chain(decls, sep));
                m
            }
        };
        let mut rest = &skel[sep + 2..];
        let mut ups = usize::from(word == "super");
        while let Some(r) = rest.strip_prefix("super::") {
            ups += 1;
            rest = r;
        }
        for _ in 0..ups {
            if base.pop().is_none() {
                panic!(
                    "{file}:{}: `super` above the crate root",
                    line_of(skel, sep)
                );
            }
        }
        let mut paths = Vec::new();
        let read = expand(rest, &base, &mut paths);
        out.extend(paths.into_iter().map(|path| Named { path, offset: sep }));
        i = skel.len() - rest.len() + read;
    }
    out
}

// ---- The crate as the checks see it ----

struct Module {
    file: String,
    /// The modules it names -> the line of the first mention.
    targets: BTreeMap<String, usize>,
    /// Its production code, comments blanked, lines kept (inline submodules included).
    code: String,
}

struct Crate {
    modules: BTreeSet<String>,
    uses: BTreeMap<String, Module>,
    /// Files compiled only into tests (declared by `#[cfg(test)]` items).
    test_only: BTreeSet<String>,
}

fn scan(sources: &Sources) -> Crate {
    let tree = module_tree(sources, false);
    let everything: BTreeSet<String> = module_tree(sources, true)
        .into_iter()
        .map(|f| f.file)
        .collect();
    let production: BTreeSet<String> = tree.iter().map(|f| f.file.clone()).collect();
    for file in sources.keys() {
        assert!(
            everything.contains(file),
            "src/{file} is declared by no `mod`: the scan cannot tell which module it is"
        );
    }
    let test_only = &everything - &production;
    let join = |m: &[String]| m.join("::");
    let mut modules = BTreeSet::new();
    for f in &tree {
        modules.insert(join(&f.module));
        for d in f.decls.iter().filter(|d| d.body.is_some()) {
            let mut m = f.module.clone();
            m.extend(inline_chain(&f.decls, d.at));
            m.push(d.name.clone());
            modules.insert(join(&m));
        }
    }
    let mut uses = BTreeMap::new();
    for f in tree {
        let skel = &f.lexed.skeleton;
        let module = |code: String| Module {
            file: f.file.clone(),
            targets: BTreeMap::new(),
            code,
        };
        uses.insert(join(&f.module), module(f.lexed.code.clone()));
        // Inline submodules share the file; its `code` stays with the file's module.
        for d in f.decls.iter().filter(|d| d.body.is_some()) {
            let mut m = f.module.clone();
            m.extend(inline_chain(&f.decls, d.at));
            m.push(d.name.clone());
            uses.insert(join(&m), module(String::new()));
        }
        for named in named_paths(&f.file, skel, &f.module, &f.decls) {
            let mut from = f.module.clone();
            from.extend(inline_chain(&f.decls, named.offset));
            // The longest prefix of the path that is a module of the crate.
            let target = (1..=named.path.len())
                .rev()
                .map(|n| named.path[..n].join("::"))
                .find(|p| modules.contains(p));
            if let (Some(t), Some(m)) = (target, uses.get_mut(&join(&from))) {
                m.targets
                    .entry(t)
                    .or_insert_with(|| line_of(skel, named.offset));
            }
        }
    }
    Crate {
        modules,
        uses,
        test_only,
    }
}

fn read_crate() -> Crate {
    scan(&read_sources())
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

fn related(a: &str, b: &str) -> bool {
    within(a, b) || within(b, a)
}

/// `inner` is `outer` or one of its submodules.
fn within(inner: &str, outer: &str) -> bool {
    inner == outer || inner.starts_with(&format!("{outer}::"))
}

// ---- The checks ----

fn layering_violations(c: &Crate) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (m, module) in &c.uses {
        let Some(may) = allowed.get(top(m)) else {
            continue; // the crate root
        };
        for (t, line) in &module.targets {
            let layer = top(t);
            if layer != top(m) && !may.contains(&layer) {
                wrong.push(format!("{m} uses {t} (src/{}:{line})", module.file));
            }
        }
    }
    wrong
}

fn import_cycles(c: &Crate) -> Vec<String> {
    let mut cycles = Vec::new();
    for (a, module) in &c.uses {
        for (b, line) in &module.targets {
            if related(a, b) {
                continue;
            }
            if let Some(other) = c.uses.get(b) {
                // `b` names `a` or something inside it. Naming an item of a parent of `a`
                // (`use super::Step` beside `a`) does not: a parent's own items are not
                // its children's.
                let back = other.targets.iter().find(|(t, _)| within(t, a));
                if let (Some((_, back_line)), true) = (back, a < b) {
                    cycles.push(format!(
                        "{a} <-> {b} (src/{}:{line}, src/{}:{back_line})",
                        module.file, other.file
                    ));
                }
            }
        }
    }
    cycles
}

fn outside_names(c: &Crate) -> Vec<String> {
    let mut found = Vec::new();
    for (m, module) in &c.uses {
        if !CORE.contains(&top(m)) {
            continue;
        }
        for word in OUTSIDE_WORLD {
            // Comments may explain what the outside world does; code may not name it.
            if let Some(at) = module.code.find(word) {
                let line = line_of(&module.code, at);
                found.push(format!("{m} names {word} (src/{}:{line})", module.file));
            }
        }
    }
    found
}

#[test]
fn each_layer_uses_only_the_layers_below_it() {
    let c = read_crate();
    assert!(
        c.modules.contains("http::routes"),
        "the scan finds the modules"
    );
    assert!(
        c.modules.contains("aws::dynamo::names") && !c.test_only.is_empty(),
        "the scan follows `mod` declarations and tells test files apart"
    );
    let wrong = layering_violations(&c);
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let c = read_crate();
    let cycles = import_cycles(&c);
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_core_names_no_http_lambda_or_sdk_type() {
    let c = read_crate();
    let found = outside_names(&c);
    assert!(
        found.is_empty(),
        "the core knows the outside:\n{}",
        found.join("\n")
    );
}

// ---- The scanner's own checks, on sources held in memory ----

fn sources(files: &[(&str, &str)]) -> Sources {
    files
        .iter()
        .map(|(f, t)| ((*f).to_owned(), (*t).to_owned()))
        .collect()
}

fn paths_of(code: &str, module: &[&str]) -> Vec<Vec<String>> {
    let module: Vec<String> = module.iter().map(|s| (*s).to_owned()).collect();
    let lexed = lex("test.rs", code);
    let decls = mod_decls("test.rs", &lexed.skeleton);
    named_paths("test.rs", &lexed.skeleton, &module, &decls)
        .into_iter()
        .map(|n| n.path)
        .collect()
}

fn strs(paths: &[&[&str]]) -> Vec<Vec<String>> {
    paths
        .iter()
        .map(|p| p.iter().map(|s| (*s).to_owned()).collect())
        .collect()
}

#[test]
fn the_scanner_reads_paths_and_groups() {
    let paths = paths_of(
        "use crate::error::Error;\nuse crate::{domain::Caller, ports};\nlet x = my_crate::a;",
        &[],
    );
    assert_eq!(
        paths,
        strs(&[&["error", "Error"], &["domain", "Caller"], &["ports"]])
    );
    assert_eq!(
        paths_of(
            "use crate::a::{self, b::{c, d as e}, f::*};\n// crate::g::h\nlet s = \"crate::i\";",
            &[]
        ),
        strs(&[&["a"], &["a", "b", "c"], &["a", "b", "d"], &["a", "f"]])
    );
    assert!(related("app", "app::connection"));
    assert!(!related("app", "aws"));
}

#[test]
fn the_scanner_resolves_super_and_self_from_the_module() {
    let from_dynamo = paths_of(
        "use super::customer::X;\nuse super::super::http::Y;\nuse self::layout::*;\n\
         let e = super::unavailable(d);\nuse super::{kms, super::wiring::W};",
        &["aws", "dynamo"],
    );
    assert_eq!(
        from_dynamo,
        strs(&[
            &["aws", "customer", "X"],
            &["http", "Y"],
            &["aws", "dynamo", "layout"],
            &["aws", "unavailable"],
            &["aws", "kms"],
            &["wiring", "W"],
        ])
    );
    // An inline module moves `super` down one level.
    assert_eq!(
        paths_of(
            "mod inner {\n    use super::super::http::Z;\n}",
            &["domain"]
        ),
        strs(&[&["http", "Z"]])
    );
    // `domain/mod.rs` is module `domain`, so is `domain.rs`: `super` of both is the root,
    // while `super` of `domain/values.rs` is `domain`.
    let tree = scan(&sources(&[
        ("lib.rs", "pub mod domain;\npub mod http;\npub mod app;"),
        ("domain/mod.rs", "pub mod values;\nuse super::http::A;"),
        ("domain/values.rs", "use super::http::B;\nmod deep;"),
        ("domain/values/deep.rs", "use super::super::super::http::C;"),
        ("app.rs", "use super::http::D;\nmod steps;"),
        ("app/steps.rs", "use super::super::http::E;"),
        ("http.rs", ""),
    ]));
    let mut wrong = layering_violations(&tree);
    wrong.sort();
    assert_eq!(
        wrong,
        [
            "app uses http (src/app.rs:1)",
            "app::steps uses http (src/app/steps.rs:1)",
            "domain uses http (src/domain/mod.rs:2)",
            "domain::values::deep uses http (src/domain/values/deep.rs:1)",
        ]
    );
    assert_eq!(
        tree.uses["domain::values"]
            .targets
            .keys()
            .collect::<Vec<_>>(),
        ["domain"],
        "`super::http` from domain::values is domain::http, not the crate's http"
    );
}

#[test]
fn the_scanner_reads_past_test_modules_and_skips_only_them() {
    let tree = scan(&sources(&[
        (
            "lib.rs",
            "pub mod domain;\npub mod http;\npub mod ports;\n\
             #[cfg(test)]\nmod tests;",
        ),
        ("tests.rs", "use crate::http::Ok;"),
        (
            "domain/mod.rs",
            "pub mod values;\n\
             #[cfg(test)]\n\
             mod roundtrip;\n\
             #[cfg(test)]\n\
             mod tests {\n\
                 use crate::http::AlsoFine;\n\
                 fn f() { let s = \"}\"; let c = '}'; /* } */ }\n\
             }\n\
             #[cfg(test)]\nuse crate::http::InTests;\n\
             use crate::http::Caught;\n\
             fn g() -> &'static str { \"If-Match\" }",
        ),
        ("domain/roundtrip.rs", "use crate::http::NotProduction;"),
        (
            "domain/values.rs",
            "#[cfg(all(test, feature = \"x\"))]\nmod helpers { use crate::http::X; }\n\
             #[cfg(any(test, feature = \"y\"))]\nuse crate::http::Y;\npub mod fixtures;",
        ),
        (
            "domain/values/fixtures.rs",
            "#![cfg(test)]\nuse crate::http::InFixtures;",
        ),
        ("http/mod.rs", ""),
        (
            "ports.rs",
            "#[cfg(test)]\npub(crate) mod fakes;\nuse super::http::Z;",
        ),
        ("ports/fakes.rs", "#![cfg(test)]\nuse crate::http::InFakes;"),
    ]));
    assert_eq!(
        tree.test_only.iter().collect::<Vec<_>>(),
        ["domain/roundtrip.rs", "ports/fakes.rs", "tests.rs"]
    );
    let mut wrong = layering_violations(&tree);
    wrong.sort();
    assert_eq!(
        wrong,
        [
            "domain uses http (src/domain/mod.rs:11)",
            "domain::values uses http (src/domain/values.rs:4)",
            "ports uses http (src/ports.rs:3)",
        ]
    );
    assert_eq!(
        outside_names(&tree),
        [
            "domain names http:: (src/domain/mod.rs:11)",
            "domain names If-Match (src/domain/mod.rs:12)",
            "domain::values names http:: (src/domain/values.rs:4)",
            "ports names http:: (src/ports.rs:3)",
        ]
    );
}

#[test]
fn the_scanner_finds_cycles_through_super() {
    let tree = scan(&sources(&[
        ("lib.rs", "pub mod app;"),
        ("app/mod.rs", "mod a;\nmod b;\nmod c;\npub struct Step;"),
        ("app/a.rs", "use super::b::X;"),
        ("app/b.rs", "use crate::app::a::Y;\nuse super::c::Z;"),
        // Names the parent's own `Step`, not its sibling `b`: no cycle with `b`.
        ("app/c.rs", "use super::super::app::a::W;\nuse super::Step;"),
    ]));
    assert_eq!(
        import_cycles(&tree),
        ["app::a <-> app::b (src/app/a.rs:1, src/app/b.rs:1)"]
    );
}
