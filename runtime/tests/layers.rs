//! The module layering: which module of `runtime/src` may import which.
//!
//! The table is the one in `docs/hacking.md`, section "Rooms" (one truth: the test reads it
//! there). This test reads every source file, collects the modules each one names through
//! `crate::` paths (comments and `#[cfg(test)]` modules left out: a test may reach anywhere),
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
        for (line, name) in crate_paths(&text) {
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
        let item = rest[..end].replace(char::is_whitespace, "");
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
            let n = n.rsplit("as").next().unwrap_or(n);
            let n = n.rsplit("::").next().unwrap_or(n);
            out.entry(n.to_string()).or_insert_with(|| module.clone());
        }
    }
    out
}

/// The text with comments blanked (line breaks kept, so line numbers hold) and
/// `#[cfg(test)]` / `#[cfg(all(test, ..))]` modules removed.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(") && t.contains("test") && !t.contains("not(test)") {
            // Skip further attributes, then a `mod name {` block to its closing brace.
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
                    let code = strip_comment(l);
                    depth += code.matches('{').count() as i64 - code.matches('}').count() as i64;
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
                out.push_str(strip_comment(l));
                out.push('\n');
            }
            continue;
        }
        out.push_str(strip_comment(line));
        out.push('\n');
    }
    out
}

/// A line without its `//` comment (doc comments included). A `//` inside a string literal
/// (a URL) ends the line early; no `crate::` path follows one in this code base.
fn strip_comment(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

/// Every `crate::name` (and each name of `crate::{a, b::c}`) with its line number.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = text[at..].find("crate::") {
        let start = at + i;
        at = start + 7;
        // `$crate::` and `gort_crate::` are not this crate's paths from here.
        let before = text[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let line = text[..start].matches('\n').count() + 1;
        let rest = &text[at..];
        if let Some(group) = rest.strip_prefix('{') {
            // The group's items, split at its top-level commas; each names its first segment.
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
            for item in items {
                let name: String = item
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != "self" {
                    out.push((line, name));
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((line, name));
            }
        }
    }
    out
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
