//! The module layering: which module of `runtime/src` may import which.
//!
//! The table is the one in `docs/hacking.md`, section "Rooms" (one truth: the test reads it
//! there). This test reads every source file, collects the modules each one names through
//! paths from the crate root (`crate::`, `gort::`, and `super::` chains that climb to the
//! root; comments, literals and `#[cfg(test)]` modules left out: a test may reach anywhere),
//! and fails on:
//!
//! - an import the table does not allow, or of a module whose row is not above the
//!   importer's (naming the file and line);
//! - a module with no row, or a row for a module that does not exist;
//! - any circle of modules other than the core's (`sched` and `panic`), or `coro` (below the
//!   core) importing anything of the crate.
//!
//! Names re-exported at the crate root (`crate::Chan`) count as the module that defines them
//! (read from `lib.rs`'s `pub use` lines); items defined in `lib.rs` itself count as `lib`, the
//! public edge, which nothing below may import. Paths that macros generate
//! (`::gort::__private::...` from `go!`, `defer!`, `select!`) are not in the source text and
//! are not counted.
//!
//! `cargo test -p gort --test layers -- --nocapture` prints the import graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The modules allowed to import one another in a circle.
const CORE: &[&str] = &["sched", "panic"];

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn imports_follow_the_rooms_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let (table, row) = rooms_table(&root.join("../docs/hacking.md"));
    let modules = modules_of(&src);
    let reexports = root_reexports(&src.join("lib.rs"), &modules);

    let mut graph: Graph = BTreeMap::new();
    let mut bad = Vec::new();
    for file in rust_files(&src) {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let from = module_of(&rel);
        graph.entry(from.clone()).or_default();
        let text = code_only(&std::fs::read_to_string(&file).unwrap());
        let depth = match rel.matches('/').count() {
            0 if rel == "lib.rs" => 0,
            0 => 1,
            d if rel.ends_with("/mod.rs") => d,
            d => d + 1,
        };
        for (line, name) in root_paths(&text, depth) {
            let to = if modules.contains(&name) {
                name.clone()
            } else if let Some(m) = reexports.get(&name) {
                m.clone()
            } else {
                "lib".to_string()
            };
            if to == from || to == "macros" {
                continue;
            }
            let allowed = table.get(&from).is_some_and(|t| t.contains(&to));
            if !allowed {
                bad.push(format!(
                    "{rel}:{line}: `{from}` imports `{to}` (through `crate::{name}`)"
                ));
            }
            let core = CORE.contains(&from.as_str()) && CORE.contains(&to.as_str());
            if !core && row.get(&to) >= row.get(&from) {
                bad.push(format!(
                    "{rel}:{line}: `{from}` imports `{to}`, whose row is not above its own"
                ));
            }
            graph.entry(from.clone()).or_default().insert(to);
        }
    }

    println!("the import graph of runtime/src (module -> modules it imports):");
    for (m, to) in &graph {
        let to: Vec<&str> = to.iter().map(String::as_str).collect();
        println!("  {m} -> {}", to.join(", "));
    }
    let circles = circles(&graph);
    println!("circles: {circles:?}");

    let missing: Vec<&String> = graph.keys().filter(|m| !table.contains_key(*m)).collect();
    assert!(
        missing.is_empty(),
        "modules with no row in docs/hacking.md's Rooms table: {missing:?}"
    );
    let stale: Vec<&String> = table.keys().filter(|m| !graph.contains_key(*m)).collect();
    assert!(
        stale.is_empty(),
        "rows of docs/hacking.md's Rooms table for modules that do not exist: {stale:?}"
    );
    assert!(
        bad.is_empty(),
        "imports that break docs/hacking.md's Rooms table:\n{}",
        bad.join("\n")
    );
    for c in &circles {
        assert!(
            c.iter().all(|m| CORE.contains(&m.as_str())),
            "a circle of modules outside the core: {c:?}"
        );
    }
    assert!(
        graph["coro"].is_empty(),
        "coro imports {:?}: the scheduler reaches coro, never the other way (it lends coro \
         what it needs through coro::signal::SchedHooks)",
        graph["coro"]
    );
}

/// The reader behind the test: what it must see, and what it must not take for an import.
#[test]
fn the_reader_sees_paths_and_nothing_else() {
    let src = r##"
use crate::{alpha, beta::Inner, self};
// crate::in_a_comment
/* crate::in_a_block /* nested */ crate::still_in_it */
fn f<'a>(x: &'a str) -> char {
    let _ = "crate::in_a_string \" crate::after_an_escape";
    let _ = r#"crate::in_a_raw_string"#;
    let _ = gort::gamma::call();
    let _ = super::super::Delta;
    let _ = super::sibling::Thing;
    let _ = gort_macros::not_ours;
    let _ = $crate::not_ours_either;
    '{'
}
#[cfg(any(test, feature = "x"))]
mod compiled { use crate::epsilon; }
#[cfg(test)]
mod tests {
    use crate::only_in_tests;
    fn g() -> &'static str { "}" }
}
use crate::zeta;
"##;
    let code = code_only(src);
    let mut names: Vec<String> = root_paths(&code, 2).into_iter().map(|(_, n)| n).collect();
    names.sort();
    assert_eq!(
        names,
        ["Delta", "alpha", "beta", "epsilon", "gamma", "zeta"],
        "{code}"
    );
    // Line numbers survive the blanking.
    let lines: Vec<usize> = root_paths(&code, 2).into_iter().map(|(l, _)| l).collect();
    assert!(lines.contains(&22), "zeta is on line 22: {lines:?}");
}

/// The rows of the "Rooms" table: module -> the modules it may import, and module -> its row
/// (the layers run upward: a module imports only modules of earlier rows, but in the core).
fn rooms_table(doc: &Path) -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, usize>) {
    let text = std::fs::read_to_string(doc).unwrap();
    let start = text
        .find("\n## Rooms")
        .expect("docs/hacking.md has a section \"## Rooms\"");
    let section = &text[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut table = BTreeMap::new();
    let mut order = BTreeMap::new();
    for (i, row) in section.lines().filter(|l| l.starts_with("| `")).enumerate() {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 3, "a Rooms row has three cells: {row}");
        let allowed: BTreeSet<String> = ticked(cells[2]).into_iter().collect();
        for m in ticked(cells[0]) {
            order.insert(m.clone(), i);
            table.insert(m, allowed.clone());
        }
    }
    assert!(!table.is_empty(), "the Rooms table has rows");
    (table, order)
}

/// The `backticked` names of a cell.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The top-level modules: `src/x.rs` and `src/x/`, and `lib`.
fn modules_of(src: &Path) -> BTreeSet<String> {
    std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            if p.is_dir() {
                Some(name)
            } else {
                name.strip_suffix(".rs").map(str::to_string)
            }
        })
        .collect()
}

fn module_of(rel: &str) -> String {
    let first = rel.split('/').next().unwrap();
    first.strip_suffix(".rs").unwrap_or(first).to_string()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// `pub use m::{A, B};` and `pub use m::A;` at the crate root: A and B count as `m`
/// (`macros` for the proc-macro crate's).
fn root_reexports(lib: &Path, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let text = code_only(&std::fs::read_to_string(lib).unwrap());
    let mut out = BTreeMap::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("pub use ") {
        rest = &rest[i + 8..];
        let end = rest.find(';').unwrap();
        // `a as b` re-exports as `b`: marked `a=>b`, then the name after the mark is kept.
        let item = rest[..end]
            .replace(" as ", "=>")
            .replace(char::is_whitespace, "");
        let item = item.strip_prefix("crate::").unwrap_or(&item);
        let Some((module, names)) = item.split_once("::") else {
            continue;
        };
        let module = if module == "gort_macros" {
            "macros".to_string()
        } else if modules.contains(module) {
            module.to_string()
        } else {
            continue;
        };
        let names = names.trim_start_matches('{').trim_end_matches('}');
        for n in names.split(',').filter(|n| !n.is_empty() && *n != "self") {
            let n = n.rsplit("=>").next().unwrap_or(n);
            let n = n.rsplit("::").next().unwrap_or(n);
            out.entry(n.to_string()).or_insert_with(|| module.clone());
        }
    }
    out
}

/// The code of a file: comments, string and character literals blanked (line breaks kept, so
/// line numbers hold), and `#[cfg(test)]` / `#[cfg(all(test, ..))]` modules removed.
fn code_only(text: &str) -> String {
    let blanked = blank(text);
    let mut out = String::with_capacity(blanked.len());
    let mut lines = blanked.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") || t.starts_with("#[cfg(all(test") {
            // Skip further attributes, then a `mod name {` block to its closing brace (braces
            // in literals are blanked, so the count holds).
            let mut skipped = vec![line];
            while lines
                .peek()
                .is_some_and(|l| l.trim_start().starts_with("#["))
            {
                skipped.push(lines.next().unwrap());
            }
            let is_mod = lines.peek().is_some_and(|l| {
                let l = l.trim_start();
                (l.starts_with("mod ") || l.starts_with("pub(crate) mod ")) && l.ends_with('{')
            });
            if is_mod {
                let mut depth = 0i64;
                for l in lines.by_ref() {
                    out.push('\n');
                    depth += l.matches('{').count() as i64 - l.matches('}').count() as i64;
                    if depth <= 0 {
                        break;
                    }
                }
                for _ in &skipped {
                    out.push('\n');
                }
                continue;
            }
            for l in skipped {
                out.push_str(l);
                out.push('\n');
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `text` with comments (line, block, nested), string literals (plain, byte, raw) and
/// character literals replaced by spaces; line breaks are kept. Lifetimes stay.
fn blank(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out: Vec<char> = c.clone();
    let wipe = |out: &mut Vec<char>, from: usize, to: usize| {
        for ch in &mut out[from..to.min(c.len())] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
    };
    let ident = |i: usize| i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '/' if c.get(i + 1) == Some(&'/') => {
                let end = (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len());
                wipe(&mut out, i, end);
                i = end;
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                let (mut j, mut depth) = (i + 2, 1);
                while j < c.len() && depth > 0 {
                    if c[j] == '/' && c.get(j + 1) == Some(&'*') {
                        depth += 1;
                        j += 2;
                    } else if c[j] == '*' && c.get(j + 1) == Some(&'/') {
                        depth -= 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                wipe(&mut out, i, j);
                i = j;
            }
            'r' if !ident(i) && matches!(c.get(i + 1), Some('"') | Some('#')) => {
                // A raw string: r"..." or r#"..."# (also after `b`).
                let mut j = i + 1;
                let mut hashes = 0;
                while c.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if c.get(j) != Some(&'"') {
                    i += 1;
                    continue;
                }
                j += 1;
                while j < c.len() {
                    if c[j] == '"' && (1..=hashes).all(|k| c.get(j + k) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                wipe(&mut out, i, j);
                i = j;
            }
            '"' => {
                let mut j = i + 1;
                while j < c.len() && c[j] != '"' {
                    j += if c[j] == '\\' { 2 } else { 1 };
                }
                wipe(&mut out, i, j + 1);
                i = j + 1;
            }
            '\'' => {
                // A character literal ('x', '\n', '\u{..}'), or a lifetime ('a), which stays.
                if c.get(i + 1) == Some(&'\\') {
                    let end = (i + 2..c.len()).find(|&j| c[j] == '\'').unwrap_or(c.len());
                    wipe(&mut out, i, end + 1);
                    i = end + 1;
                } else if c.get(i + 2) == Some(&'\'') {
                    wipe(&mut out, i, i + 3);
                    i += 3;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out.into_iter().collect()
}

/// Every name this file reaches at the crate root, with its line number: `crate::name` and
/// `gort::name` (the crate names itself so, `extern crate self as gort`), each name of
/// `crate::{a, b::c}`, and `super::name` where the `super`s climb to the root (`super::` in
/// `x/mod.rs`, `super::super::` in `x/y.rs`). `module_depth` is the file's depth below the
/// root (`lib.rs` 0, `x.rs` and `x/mod.rs` 1, `x/y.rs` 2).
fn root_paths(text: &str, module_depth: usize) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for prefix in ["crate::", "gort::", "super::"] {
        let mut at = 0;
        while let Some(i) = text[at..].find(prefix) {
            let start = at + i;
            at = start + prefix.len();
            // `$crate::`, `gort_crate::`, `super::` in the middle of a path (`a::super::`).
            let before = text[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            if prefix == "super::" {
                if text[..start].ends_with("super::") {
                    continue; // counted from the first `super::` of the chain
                }
                let mut ups = 1;
                while text[at..].starts_with("super::") {
                    ups += 1;
                    at += "super::".len();
                }
                if ups < module_depth {
                    continue; // stays inside the module
                }
            } else if prefix == "gort::" && text[..start].ends_with("gort_macros::") {
                continue;
            }
            let line = text[..start].matches('\n').count() + 1;
            out.extend(names_at(&text[at..]).into_iter().map(|n| (line, n)));
        }
    }
    out
}

/// The first segment of the path at the start of `rest`, or of each item of a `{a, b::c}`
/// group there.
fn names_at(rest: &str) -> Vec<String> {
    let first = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![first(rest)]
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect();
    };
    // The group's items, split at its top-level commas.
    let mut depth = 0;
    let mut items = vec![String::new()];
    for c in group.chars() {
        match c {
            '}' if depth == 0 => break,
            ',' if depth == 0 => items.push(String::new()),
            _ => {
                depth += i32::from(c == '{') - i32::from(c == '}');
                items.last_mut().unwrap().push(c);
            }
        }
    }
    items
        .iter()
        .map(|i| first(i))
        .filter(|n| !n.is_empty() && n != "self")
        .collect()
}

/// The graph's strongly connected components of more than one module (Tarjan).
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on.insert(v);
        if let Some(next) = s.graph.get(v) {
            for w in next {
                let w = w.as_str();
                if !s.graph.contains_key(w) {
                    continue;
                }
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if s.on.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut c = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on.remove(w);
                c.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                s.out.push(c);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}
