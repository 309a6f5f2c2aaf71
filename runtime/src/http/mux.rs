//! The router: Go 1.22's `http.ServeMux` patterns (`[METHOD ]/path/{name}/{rest...}`), the most
//! specific pattern wins, conflicts are refused at registration, 404 / 405 / redirects as Go
//! answers them. Host patterns are not supported.
//!
//! Matching is a scan of the patterns (a router for a program's routes, tens of them, not a
//! table of thousands); each match is compared with the best so far by Go's specificity
//! relation (`compare`), which registration made a total order on the patterns any one
//! request can match.

use std::borrow::Cow;
use std::sync::Arc;

use super::body::Body;
use super::server::Handler;
use super::{Request, Response};

/// A segment of a pattern's path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    /// A literal segment (non-empty, unescaped).
    Lit(String),
    /// `{name}`: one non-empty segment.
    Wild(String),
    /// `{name...}`, or the anonymous one a trailing `/` stands for: the rest of the path.
    Multi(Option<String>),
    /// `{$}`: the end of the path, after a trailing slash.
    End,
}

/// A parsed pattern.
#[derive(Debug)]
struct Pattern {
    text: String,
    /// `None`: every method.
    method: Option<http::Method>,
    segs: Vec<Seg>,
}

/// How two patterns' sets of requests relate (Go's `relationship`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rel {
    Equivalent,
    MoreSpecific,
    MoreGeneral,
    Disjoint,
    Overlaps,
}

fn inverse(r: Rel) -> Rel {
    match r {
        Rel::MoreSpecific => Rel::MoreGeneral,
        Rel::MoreGeneral => Rel::MoreSpecific,
        r => r,
    }
}

/// Go's `combineRelationships`: the relation of two patterns from those of their parts.
fn combine(r1: Rel, r2: Rel) -> Rel {
    match r1 {
        Rel::Equivalent => r2,
        Rel::Disjoint => Rel::Disjoint,
        Rel::Overlaps => {
            if r2 == Rel::Disjoint {
                Rel::Disjoint
            } else {
                Rel::Overlaps
            }
        }
        Rel::MoreGeneral | Rel::MoreSpecific => {
            if r2 == Rel::Equivalent {
                r1
            } else if r2 == inverse(r1) {
                Rel::Overlaps
            } else {
                r2
            }
        }
    }
}

fn compare_segs(s1: &Seg, s2: &Seg) -> Rel {
    use Seg::*;
    match (s1, s2) {
        (Multi(_), Multi(_)) => Rel::Equivalent,
        (Multi(_), _) => Rel::MoreGeneral,
        (_, Multi(_)) => Rel::MoreSpecific,
        (Wild(_), Wild(_)) | (End, End) => Rel::Equivalent,
        // A single wildcard does not match a trailing slash.
        (Wild(_), End) | (End, Wild(_)) => Rel::Disjoint,
        (Wild(_), Lit(_)) => Rel::MoreGeneral,
        (Lit(_), Wild(_)) => Rel::MoreSpecific,
        (Lit(a), Lit(b)) if a == b => Rel::Equivalent,
        _ => Rel::Disjoint,
    }
}

impl Pattern {
    fn ends_in_multi(&self) -> bool {
        matches!(self.segs.last(), Some(Seg::Multi(_)))
    }

    /// Go's `comparePaths`.
    fn compare_paths(&self, other: &Pattern) -> Rel {
        let (a, b) = (&self.segs, &other.segs);
        if a.len() != b.len() && !self.ends_in_multi() && !other.ends_in_multi() {
            return Rel::Disjoint;
        }
        let mut rel = Rel::Equivalent;
        for (s1, s2) in a.iter().zip(b.iter()) {
            rel = combine(rel, compare_segs(s1, s2));
            if rel == Rel::Disjoint {
                return rel;
            }
        }
        match a.len().cmp(&b.len()) {
            std::cmp::Ordering::Equal => rel,
            // Only a shorter pattern ending in a multi can still match what the longer does
            // (the zip above compared the multi with the longer one's segment already).
            std::cmp::Ordering::Less if self.ends_in_multi() => combine(rel, Rel::MoreGeneral),
            std::cmp::Ordering::Greater if other.ends_in_multi() => combine(rel, Rel::MoreSpecific),
            _ => Rel::Disjoint,
        }
    }

    /// Go's `compareMethods` (a `GET` pattern also matches `HEAD`).
    fn compare_methods(&self, other: &Pattern) -> Rel {
        match (&self.method, &other.method) {
            (a, b) if a == b => Rel::Equivalent,
            (None, _) => Rel::MoreGeneral,
            (_, None) => Rel::MoreSpecific,
            (Some(a), Some(b)) if *a == http::Method::GET && *b == http::Method::HEAD => {
                Rel::MoreGeneral
            }
            (Some(a), Some(b)) if *a == http::Method::HEAD && *b == http::Method::GET => {
                Rel::MoreSpecific
            }
            _ => Rel::Disjoint,
        }
    }

    /// Go's `comparePathsAndMethods`.
    fn compare(&self, other: &Pattern) -> Rel {
        let m = self.compare_methods(other);
        if m == Rel::Disjoint {
            return m;
        }
        combine(m, self.compare_paths(other))
    }

    fn method_matches(&self, m: &http::Method) -> bool {
        match &self.method {
            None => true,
            Some(p) => p == m || (*p == http::Method::GET && *m == http::Method::HEAD),
        }
    }

    /// The wildcards' values if the path matches: its segments, split at `/` after the
    /// leading one and unescaped once per request (`ServeMux::route`).
    fn match_path(&self, parts: &[Cow<'_, str>]) -> Option<Values> {
        let mut values = Vec::new();
        for (i, seg) in self.segs.iter().enumerate() {
            match seg {
                Seg::Multi(name) => {
                    // At least the slash before it: `/a/` and `/a/{x...}` do not match `/a`.
                    parts.get(i)?;
                    if let Some(n) = name {
                        values.push((n.clone(), parts[i..].join("/")));
                    }
                    return Some(values);
                }
                Seg::Lit(s) => {
                    if *parts.get(i)? != **s {
                        return None;
                    }
                }
                Seg::Wild(n) => {
                    let p = parts.get(i)?;
                    if p.is_empty() {
                        return None;
                    }
                    values.push((n.clone(), p.to_string()));
                }
                Seg::End => {
                    if parts.get(i).map_or(true, |p| !p.is_empty()) || i + 1 != parts.len() {
                        return None;
                    }
                }
            }
        }
        (parts.len() == self.segs.len()).then_some(values)
    }
}

/// Parses `[METHOD ]/path`; an error names what is wrong.
fn parse(text: &str) -> Result<Pattern, String> {
    let (method, path) = match text.split_once(' ') {
        Some((m, p)) => {
            let m = http::Method::from_bytes(m.as_bytes())
                .map_err(|_| format!("invalid method {m:?}"))?;
            (Some(m), p.trim_start_matches(' '))
        }
        None => (None, text),
    };
    if path.contains(' ') {
        return Err("unexpected space (only one between the method and the path)".into());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err("the path must begin with '/' (host patterns are not supported)".into());
    };
    if method.as_ref() != Some(&http::Method::CONNECT) && clean_path(path) != path {
        return Err("non-CONNECT pattern with unclean path can never match".into());
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let mut segs = Vec::with_capacity(parts.len());
    let mut names: Vec<&str> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if part.is_empty() {
            if last {
                segs.push(Seg::Multi(None)); // a trailing slash: the subtree
                continue;
            }
            return Err("empty path segment".into());
        }
        if let Some(inner) = part.strip_prefix('{') {
            let Some(inner) = inner.strip_suffix('}') else {
                return Err(format!(
                    "bad wildcard segment {part:?} (a wildcard is a whole segment)"
                ));
            };
            if inner == "$" {
                if !last {
                    return Err("{$} not at the end".into());
                }
                segs.push(Seg::End);
                continue;
            }
            let (name, multi) = match inner.strip_suffix("...") {
                Some(n) => (n, true),
                None => (inner, false),
            };
            if name.is_empty()
                || !name.chars().all(|c| c.is_alphanumeric() || c == '_')
                || name.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(format!("bad wildcard name {name:?}"));
            }
            if names.contains(&name) {
                return Err(format!("duplicate wildcard name {name:?}"));
            }
            names.push(name);
            if multi {
                if !last {
                    return Err(format!("{{{name}...}} wildcard not at the end"));
                }
                segs.push(Seg::Multi(Some(name.to_string())));
            } else {
                segs.push(Seg::Wild(name.to_string()));
            }
        } else {
            if part.contains('{') || part.contains('}') {
                return Err(format!(
                    "bad wildcard segment {part:?} (a wildcard is a whole segment)"
                ));
            }
            segs.push(Seg::Lit(unescape(part).into_owned()));
        }
    }
    Ok(Pattern {
        text: text.to_string(),
        method,
        segs,
    })
}

/// `%XX` escapes decoded (what is not a valid escape stays as it is).
fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Go's `path.Clean` for a request path, keeping a trailing slash.
fn clean_path(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut c = format!("/{}", out.join("/"));
    if p.ends_with('/') && c != "/" {
        c.push('/');
    }
    c
}

/// The values of a request's path wildcards, in its extensions (see [`path_value`]).
#[derive(Clone, Debug, Default)]
pub struct PathValues(Vec<(String, String)>);

/// The value of wildcard `name` in the pattern that matched `req` (Go's `r.PathValue(name)`);
/// `None` if the pattern has no such wildcard (or `req` did not come through a [`ServeMux`]).
/// Escapes (`%2F`) are decoded.
///
/// ```
/// use gort::http::{path_value, Body, Request, Response, ServeMux};
/// let mut mux = ServeMux::new();
/// mux.handle_func("GET /users/{id}", |req: Request| {
///     Response::new(Body::from(format!("user {}", path_value(&req, "id").unwrap())))
/// });
/// ```
pub fn path_value<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.extensions()
        .get::<PathValues>()?
        .0
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Go 1.22's `http.ServeMux`: routes a request to the handler of the most specific pattern
/// that matches its method and path.
///
/// Patterns are `[METHOD ]/path`: a literal segment matches itself; `{name}` one segment;
/// `{name...}` (last) the rest of the path; a trailing `/` a subtree (`/static/` matches
/// `/static/a/b`); `{$}` (last) only the path ending in that slash (`/{$}` is the root alone).
/// A `GET` pattern matches `HEAD` too; a pattern without a method matches every method.
///
/// When several patterns match, the most specific wins (`/users/new` over `/users/{id}`,
/// `GET /x` over `/x`); two patterns that match some request in common but neither is more
/// specific conflict, and registering the second panics, as in Go. Otherwise Go's answers:
/// `404 page not found`, `405 Method Not Allowed` with `Allow` when the path matches for
/// other methods, and `301` to the clean path (`//`, `.`, `..`) or to a subtree's slash
/// (`/static` to `/static/`). Host patterns (`example.com/`) are not supported.
///
/// ```
/// use gort::http::{path_value, Body, Request, Response, ServeMux, Server};
///
/// gort::run(|| {
///     let mut mux = ServeMux::new();
///     mux.handle_func("GET /items/{id}", |req: Request| {
///         Response::new(Body::from(format!("item {}", path_value(&req, "id").unwrap())))
///     });
///     mux.handle_func("POST /items", |_req: Request| Response::new(Body::from("created")));
///     let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = ln.local_addr().unwrap();
///     gort::go!(move || {
///         let _ = Server::new(mux).serve(ln);
///     });
///     let r = gort::http::get(&format!("http://{addr}/items/7")).unwrap();
///     assert_eq!(r.into_body().text().unwrap(), "item 7");
///     let r = gort::http::get(&format!("http://{addr}/items")).unwrap();
///     assert_eq!(r.status(), 405); // only POST
///     let _ = r.into_body().bytes();
/// });
/// ```
#[derive(Default)]
pub struct ServeMux {
    routes: Vec<(Pattern, Arc<dyn Handler>)>,
}

impl std::fmt::Debug for ServeMux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|(p, _)| &p.text))
            .finish()
    }
}

impl ServeMux {
    /// An empty mux (every request is a 404).
    pub fn new() -> ServeMux {
        ServeMux::default()
    }

    /// Routes requests matching `pattern` to `handler` (Go's `mux.Handle`).
    ///
    /// # Panics
    /// If `pattern` is malformed, or conflicts with one registered before (as Go does).
    #[track_caller]
    pub fn handle(&mut self, pattern: &str, handler: impl Handler) -> &mut ServeMux {
        let p = match parse(pattern) {
            Ok(p) => p,
            Err(e) => panic!("http: parsing {pattern:?}: {e}"),
        };
        for (q, _) in &self.routes {
            match p.compare(q) {
                Rel::Equivalent => panic!(
                    "http: pattern {:?} conflicts with pattern {:?}: they match the same requests",
                    p.text, q.text
                ),
                Rel::Overlaps => panic!(
                    "http: pattern {:?} conflicts with pattern {:?}: some requests match both \
                     and neither is more specific",
                    p.text, q.text
                ),
                _ => {}
            }
        }
        self.routes.push((p, Arc::new(handler)));
        self
    }

    /// [`handle`](ServeMux::handle) for a function or closure (Go's `mux.HandleFunc`).
    #[track_caller]
    pub fn handle_func<F>(&mut self, pattern: &str, f: F) -> &mut ServeMux
    where
        F: Fn(Request) -> Response + Send + Sync + 'static,
    {
        self.handle(pattern, f)
    }

    /// Whether some pattern could match `path` + `/` exactly (a subtree or `{$}` pattern one
    /// segment deeper than `path`): only then is the redirect worth a second routing.
    fn may_match_slashed(&self, path: &str) -> bool {
        let depth = path.matches('/').count() + 1;
        self.routes.iter().any(|(p, _)| {
            p.segs.len() == depth && matches!(p.segs.last(), Some(Seg::Multi(_) | Seg::End))
        })
    }

    /// The route for `method` and `path`.
    fn route(&self, method: &http::Method, path: &str) -> Route<'_> {
        let parts: Vec<Cow<'_, str>> = path
            .strip_prefix('/')
            .unwrap_or(path)
            .split('/')
            .map(unescape)
            .collect();
        let mut best: Option<(&Pattern, &Arc<dyn Handler>, Values)> = None;
        let mut allowed: Vec<String> = Vec::new();
        for (p, h) in &self.routes {
            let Some(values) = p.match_path(&parts) else {
                continue;
            };
            if !p.method_matches(method) {
                if let Some(m) = &p.method {
                    allowed.push(m.to_string());
                    if *m == http::Method::GET {
                        allowed.push("HEAD".into());
                    }
                }
                continue;
            }
            if best
                .as_ref()
                .map_or(true, |(b, _, _)| p.compare(b) == Rel::MoreSpecific)
            {
                best = Some((p, h, values));
            }
        }
        match best {
            Some((p, h, values)) => Route::Found(p, h, values),
            None if !allowed.is_empty() => {
                allowed.sort();
                allowed.dedup();
                Route::NotAllowed(allowed)
            }
            None => Route::NotFound,
        }
    }
}

/// Wildcard names and their values.
type Values = Vec<(String, String)>;

/// Where a request goes.
enum Route<'a> {
    Found(&'a Pattern, &'a Arc<dyn Handler>, Values),
    /// The path matches only for these methods.
    NotAllowed(Vec<String>),
    NotFound,
}

/// Go's `exactMatch`: whether `p` matches `path` without its final multi wildcard taking
/// anything (the path has as many slashes as the pattern has segments).
fn exact_match(p: &Pattern, path: &str) -> bool {
    if !p.ends_in_multi() {
        return true;
    }
    if !path.ends_with('/') {
        return false;
    }
    p.segs.len() == path.matches('/').count()
}

fn text_response(code: u16, body: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::NOT_FOUND);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        http::HeaderValue::from_static("nosniff"),
    );
    r
}

fn redirect(to: &str, query: Option<&str>) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = http::StatusCode::MOVED_PERMANENTLY;
    let loc = match query {
        Some(q) => format!("{to}?{q}"),
        None => to.to_string(),
    };
    if let Ok(v) = http::HeaderValue::from_str(&loc) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
}

impl Handler for ServeMux {
    fn serve(&self, mut req: Request) -> Response {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().map(str::to_string);
        if method != http::Method::CONNECT {
            let clean = clean_path(&path);
            if clean != path {
                return redirect(&clean, query.as_deref());
            }
        }
        let route = self.route(&method, &path);
        // Go's `matchOrRedirect`: a path without its trailing slash that a pattern matches
        // exactly with one goes there, even when a more general pattern (`/`) would serve it.
        let exact = matches!(&route, Route::Found(p, ..) if exact_match(p, &path));
        if !exact && !path.ends_with('/') && self.may_match_slashed(&path) {
            let slashed = format!("{path}/");
            if matches!(self.route(&method, &slashed), Route::Found(p, ..) if exact_match(p, &slashed))
            {
                return redirect(&slashed, query.as_deref());
            }
        }
        match route {
            Route::Found(_, h, values) => {
                req.extensions_mut().insert(PathValues(values));
                h.serve(req)
            }
            Route::NotAllowed(allowed) => {
                let mut r = text_response(405, "Method Not Allowed\n");
                if let Ok(v) = http::HeaderValue::from_str(&allowed.join(", ")) {
                    r.headers_mut().insert(http::header::ALLOW, v);
                }
                r
            }
            Route::NotFound => text_response(404, "404 page not found\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: &str, b: &str) -> Rel {
        parse(a).unwrap().compare(&parse(b).unwrap())
    }

    /// Go's own cases (net/http/pattern_test.go, TestComparePaths and friends).
    #[test]
    fn specificity_follows_go() {
        assert_eq!(rel("/a", "/a"), Rel::Equivalent);
        assert_eq!(rel("/a", "/b"), Rel::Disjoint);
        assert_eq!(rel("/a", "/{x}"), Rel::MoreSpecific);
        assert_eq!(rel("/{x}", "/a"), Rel::MoreGeneral);
        assert_eq!(rel("/a/", "/a/b"), Rel::MoreGeneral);
        assert_eq!(rel("/a/{x}", "/{y}/b"), Rel::Overlaps);
        assert_eq!(rel("/{x}", "/{$}"), Rel::Disjoint);
        assert_eq!(rel("/", "/{$}"), Rel::MoreGeneral);
        assert_eq!(rel("/a/{x...}", "/a/"), Rel::Equivalent);
        assert_eq!(rel("GET /a", "/a"), Rel::MoreSpecific);
        assert_eq!(rel("GET /a", "HEAD /a"), Rel::MoreGeneral);
        assert_eq!(rel("GET /a", "POST /a"), Rel::Disjoint);
        assert_eq!(rel("GET /{x}", "/a"), Rel::Overlaps);
        assert_eq!(rel("/a/b/{x...}", "/a/{y}/c"), Rel::Overlaps);
    }

    #[test]
    fn malformed_patterns_are_refused_with_a_reason() {
        for (p, why) in [
            ("a", "must begin with '/'"),
            ("example.com/", "must begin with '/'"),
            ("/a/{x", "bad wildcard"),
            ("/a/x{y}", "whole segment"),
            ("/{x...}/b", "not at the end"),
            ("/{$}/b", "not at the end"),
            ("/{x}/{x}", "duplicate"),
            ("/a//b", "unclean path"),
            ("/a/./b", "unclean path"),
            ("/a/../b", "unclean path"),
            ("BAD\u{1} /", "invalid method"),
        ] {
            let e = parse(p).unwrap_err();
            assert!(e.contains(why), "{p:?}: {e}");
        }
    }

    fn route(mux: &ServeMux, m: &str, path: &str) -> Result<Values, u16> {
        match mux.route(&http::Method::from_bytes(m.as_bytes()).unwrap(), path) {
            Route::Found(_, _, v) => Ok(v),
            Route::NotAllowed(_) => Err(405),
            Route::NotFound => Err(404),
        }
    }

    #[test]
    fn the_most_specific_pattern_wins_and_wildcards_bind() {
        let mut mux = ServeMux::new();
        let h = |_: Request| Response::new(Body::empty());
        mux.handle("/", h)
            .handle("/{$}", h)
            .handle("GET /users/{id}", h)
            .handle("GET /users/new", h)
            .handle("/files/{path...}", h)
            .handle("POST /users", h);
        let v = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(route(&mux, "GET", "/users/7"), Ok(v(&[("id", "7")])));
        assert_eq!(route(&mux, "HEAD", "/users/7"), Ok(v(&[("id", "7")])));
        assert_eq!(route(&mux, "GET", "/users/new"), Ok(v(&[])));
        assert_eq!(route(&mux, "GET", "/users/a%2Fb"), Ok(v(&[("id", "a/b")])));
        assert_eq!(
            route(&mux, "GET", "/files/a/b/c.txt"),
            Ok(v(&[("path", "a/b/c.txt")]))
        );
        assert_eq!(route(&mux, "GET", "/files/"), Ok(v(&[("path", "")])));
        // `/` catches the rest; `DELETE /users/7` falls to it too (it has no method).
        assert_eq!(route(&mux, "DELETE", "/users/7"), Ok(v(&[])));
        let mut strict = ServeMux::new();
        strict.handle("GET /users/{id}", h).handle("POST /users", h);
        assert_eq!(route(&strict, "DELETE", "/users/7"), Err(405));
        assert_eq!(route(&strict, "GET", "/nothing"), Err(404));
        assert_eq!(route(&strict, "GET", "/users/"), Err(404)); // {id} is non-empty
    }

    #[test]
    #[should_panic(expected = "conflicts with pattern \"/a/{x}\"")]
    fn conflicting_patterns_panic_at_registration() {
        let h = |_: Request| Response::new(Body::empty());
        ServeMux::new().handle("/a/{x}", h).handle("/{y}/b", h);
    }

    /// Go's subtree redirect, also where a more general pattern would serve the path.
    #[test]
    fn a_subtree_without_its_slash_is_redirected() {
        let h = |_: Request| Response::new(Body::from("x"));
        let mut mux = ServeMux::new();
        mux.handle("/", h)
            .handle("/static/", h)
            .handle("POST /a", h)
            .handle("GET /a/", h)
            .handle("/files/{rest...}", h);
        let get = |m: &str, p: &str| {
            let req = http::Request::builder()
                .method(m)
                .uri(p)
                .body(Body::empty())
                .unwrap();
            let r = mux.serve(req);
            let loc = r
                .headers()
                .get(http::header::LOCATION)
                .map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), loc)
        };
        assert_eq!(get("GET", "/static"), (301, Some("/static/".into())));
        assert_eq!(
            get("GET", "/static?x=1"),
            (301, Some("/static/?x=1".into()))
        );
        assert_eq!(get("GET", "/a"), (301, Some("/a/".into())));
        assert_eq!(get("GET", "/files"), (301, Some("/files/".into())));
        assert_eq!(get("GET", "/static/"), (200, None));
        assert_eq!(get("GET", "/other"), (200, None)); // `/` serves it
        assert_eq!(get("GET", "/x//y"), (301, Some("/x/y".into())));
    }

    #[test]
    fn paths_are_cleaned() {
        assert_eq!(clean_path("/a//b/./c/../d/"), "/a/b/d/");
        assert_eq!(clean_path("/../x"), "/x");
        assert_eq!(clean_path("/"), "/");
        assert_eq!(unescape("a%2fb%zz%4"), "a/b%zz%4");
    }
}
