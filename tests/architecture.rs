//! The module graph, checked against `docs/architecture.md`.
//!
//! Reads every file under `src/` with `syn`, collects the paths it names
//! into the crate (`use crate::…`, `super::…`, child modules, and the same
//! paths written inline in code), resolves each to the file that defines
//! it (following `pub use` re-exports), and fails:
//! - on a cycle between files;
//! - on an edge between top-level modules that the page's table does not
//!   allow;
//! - on a top-level module the table does not place.
//!
//! Paths inside macro invocations are not parsed (syn keeps them as
//! tokens); an import written only there escapes the check.
//! `ARCH_DEBUG=1` prints every edge with the path that made it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use syn::visit::Visit;

type ModPath = Vec<String>;

#[derive(Default)]
struct Crate {
    /// Module path (`["http", "state"]`, `[]` for the root) → file.
    modules: BTreeMap<ModPath, PathBuf>,
    /// Module → name → absolute path it re-exports (`pub use`).
    reexports: BTreeMap<ModPath, BTreeMap<String, ModPath>>,
    /// Module → name → absolute path it imports (any `use`, also inside a
    /// function), so `jobs::worker::run` after `use crate::jobs` resolves.
    imports: BTreeMap<ModPath, BTreeMap<String, ModPath>>,
}

fn module_path(src: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: ModPath = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every path a use tree names, with its prefix, e.g. `a::{b, c::d}` gives
/// `a::b` and `a::c::d`; `self` names the prefix itself.
fn flatten(tree: &syn::UseTree, prefix: &mut ModPath, out: &mut Vec<(ModPath, Option<String>)>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) if n.ident == "self" => {
            out.push((prefix.clone(), prefix.last().cloned()))
        }
        syn::UseTree::Name(n) => {
            let mut p = prefix.clone();
            p.push(n.ident.to_string());
            out.push((p, Some(n.ident.to_string())));
        }
        syn::UseTree::Rename(r) => {
            let mut p = prefix.clone();
            p.push(r.ident.to_string());
            out.push((p, Some(r.rename.to_string())));
        }
        syn::UseTree::Glob(_) => out.push((prefix.clone(), None)),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten(t, prefix, out);
            }
        }
    }
}

impl Crate {
    fn is_module(&self, path: &[String]) -> bool {
        self.modules.contains_key(path)
    }

    /// `path` as written in module `at`, made absolute; `None` when it
    /// leaves the crate (another crate, a local item, a prelude name).
    fn absolute(&self, at: &[String], path: &[String]) -> Option<ModPath> {
        let (first, rest) = path.split_first()?;
        let mut base: ModPath = match first.as_str() {
            "crate" => Vec::new(),
            "self" => at.to_vec(),
            "super" => {
                let mut base = at.to_vec();
                base.pop()?;
                let mut rest = rest;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
                base.extend(rest.iter().cloned());
                return Some(base);
            }
            name => {
                let mut child = at.to_vec();
                child.push(name.to_owned());
                if self.is_module(&child) {
                    child
                } else {
                    self.imports.get(at)?.get(name)?.clone()
                }
            }
        };
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The file that defines what `path` (absolute) names.
    fn resolve(&self, path: &[String], depth: usize) -> Option<&PathBuf> {
        let len = (0..=path.len())
            .rev()
            .find(|&n| self.is_module(&path[..n]))?;
        let module = &path[..len];
        if depth < 8
            && let Some(name) = path.get(len)
            && let Some(target) = self.reexports.get(module).and_then(|r| r.get(name))
        {
            let mut next = target.clone();
            next.extend(path[len + 1..].iter().cloned());
            if let Some(file) = self.resolve(&next, depth + 1) {
                return Some(file);
            }
        }
        self.modules.get(module)
    }
}

/// Collects the paths one file names, in the module each is written in.
struct Names<'a> {
    krate: &'a Crate,
    at: ModPath,
    found: Vec<ModPath>,
}

impl Names<'_> {
    fn add(&mut self, path: &[String]) {
        if let Some(abs) = self.krate.absolute(&self.at, path) {
            self.found.push(abs);
        }
    }
}

impl<'ast> Visit<'ast> for Names<'_> {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        // A re-export (`pub use`) is a name, not a use: a folder's `mod.rs`
        // may offer what its parts define. Its users are led to the
        // defining file instead (see `Crate::resolve`).
        if !matches!(item.vis, syn::Visibility::Inherited) {
            return;
        }
        let mut out = Vec::new();
        flatten(&item.tree, &mut Vec::new(), &mut out);
        for (path, _) in out {
            self.add(&path);
        }
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if item.content.is_some() {
            self.at.push(item.ident.to_string());
            syn::visit::visit_item_mod(self, item);
            self.at.pop();
        }
    }

    /// `pub(super)` names a module but uses nothing.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: ModPath = path.segments.iter().map(|s| s.ident.to_string()).collect();
        // One segment in code is a local, a type or an item in scope, never
        // a module (a module is only ever a path's prefix): `rows` the
        // variable is not `mod rows`.
        if segments.len() > 1 {
            self.add(&segments);
        }
        syn::visit::visit_path(self, path);
    }
}

/// Every `use` of one file: in which module, what path, under which name.
struct Uses {
    at: ModPath,
    found: Vec<(ModPath, ModPath, String)>,
}

impl<'ast> Visit<'ast> for Uses {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut out = Vec::new();
        flatten(&item.tree, &mut Vec::new(), &mut out);
        for (path, name) in out {
            if let Some(name) = name {
                self.found.push((self.at.clone(), path, name));
            }
        }
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if item.content.is_some() {
            self.at.push(item.ident.to_string());
            syn::visit::visit_item_mod(self, item);
            self.at.pop();
        }
    }
}

/// Inline modules (`mod tests { … }`) are modules of the same file.
fn inline_modules(items: &[syn::Item], at: &ModPath, file: &Path, krate: &mut Crate) {
    for item in items {
        if let syn::Item::Mod(m) = item
            && let Some((_, items)) = &m.content
        {
            let mut p = at.clone();
            p.push(m.ident.to_string());
            krate.modules.insert(p.clone(), file.to_path_buf());
            inline_modules(items, &p, file, krate);
        }
    }
}

struct Graph {
    src: PathBuf,
    /// File → files it uses (other than itself).
    edges: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
    /// File → its module path.
    paths: BTreeMap<PathBuf, ModPath>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // main.rs is the binary: it uses the library as `notes_api::…`.
    files.retain(|f| f != &src.join("main.rs"));
    let parsed: Vec<(PathBuf, ModPath, syn::File)> = files
        .into_iter()
        .map(|f| {
            let text = fs::read_to_string(&f).unwrap();
            let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let m = module_path(&src, &f);
            (f, m, ast)
        })
        .collect();
    let mut krate = Crate::default();
    for (f, m, ast) in &parsed {
        krate.modules.insert(m.clone(), f.clone());
        inline_modules(&ast.items, m, f, &mut krate);
    }
    for (_, m, ast) in &parsed {
        let mut uses = Uses {
            at: m.clone(),
            found: Vec::new(),
        };
        uses.visit_file(ast);
        for (at, path, name) in uses.found {
            if let Some(abs) = krate.absolute(&at, &path) {
                krate.imports.entry(at).or_default().insert(name, abs);
            }
        }
    }
    for (_, m, ast) in &parsed {
        for item in &ast.items {
            if let syn::Item::Use(u) = item
                && !matches!(u.vis, syn::Visibility::Inherited)
            {
                let mut out = Vec::new();
                flatten(&u.tree, &mut Vec::new(), &mut out);
                for (path, name) in out {
                    if let (Some(name), Some(abs)) = (name, krate.absolute(m, &path)) {
                        krate
                            .reexports
                            .entry(m.clone())
                            .or_default()
                            .insert(name, abs);
                    }
                }
            }
        }
    }
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut paths = BTreeMap::new();
    for (f, m, ast) in &parsed {
        let mut names = Names {
            krate: &krate,
            at: m.clone(),
            found: Vec::new(),
        };
        names.visit_file(ast);
        let targets = edges.entry(f.clone()).or_default();
        for path in &names.found {
            if let Some(target) = krate.resolve(path, 0)
                && target != f
                && target != &src.join("lib.rs")
            {
                if std::env::var("ARCH_DEBUG").is_ok() {
                    eprintln!(
                        "{} -> {} via {}",
                        f.display(),
                        target.display(),
                        path.join("::")
                    );
                }
                targets.insert(target.clone());
            }
        }
        paths.insert(f.clone(), m.clone());
    }
    Graph { src, edges, paths }
}

impl Graph {
    fn name(&self, file: &Path) -> String {
        file.strip_prefix(&self.src).unwrap().display().to_string()
    }

    /// Strongly connected components of more than one file (Tarjan).
    fn cycles(&self) -> Vec<Vec<PathBuf>> {
        struct State<'g> {
            g: &'g Graph,
            index: BTreeMap<&'g PathBuf, usize>,
            low: BTreeMap<&'g PathBuf, usize>,
            stack: Vec<&'g PathBuf>,
            on_stack: BTreeSet<&'g PathBuf>,
            out: Vec<Vec<PathBuf>>,
        }
        fn visit<'g>(s: &mut State<'g>, v: &'g PathBuf) {
            let n = s.index.len();
            s.index.insert(v, n);
            s.low.insert(v, n);
            s.stack.push(v);
            s.on_stack.insert(v);
            for w in s.g.edges.get(v).into_iter().flatten() {
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let low = s.low[v].min(s.low[w]);
                    s.low.insert(v, low);
                } else if s.on_stack.contains(w) {
                    let low = s.low[v].min(s.index[w]);
                    s.low.insert(v, low);
                }
            }
            if s.low[v] == s.index[v] {
                let mut component = Vec::new();
                while let Some(w) = s.stack.pop() {
                    s.on_stack.remove(w);
                    component.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    s.out.push(component);
                }
            }
        }
        let mut s = State {
            g: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            out: Vec::new(),
        };
        for v in self.edges.keys() {
            if !s.index.contains_key(v) {
                visit(&mut s, v);
            }
        }
        s.out
    }

    /// The top-level module a file belongs to (`http` for `http/state.rs`).
    fn top(&self, file: &Path) -> Option<&str> {
        self.paths[file].first().map(String::as_str)
    }
}

/// The table of `docs/architecture.md` between its markers: module → the
/// modules it may use.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let page =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md"))
            .expect("docs/architecture.md");
    let table = page
        .split("<!-- layers:begin -->")
        .nth(1)
        .and_then(|t| t.split("<!-- layers:end -->").next())
        .expect("docs/architecture.md has a table between <!-- layers:begin --> and <!-- layers:end -->");
    let mut out = BTreeMap::new();
    for row in table.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let [module, uses, ..] = cells[..] else {
            continue;
        };
        let module = module.trim_matches('`');
        if module.is_empty() || module == "module" || module.starts_with('-') {
            continue;
        }
        let uses = uses
            .split(',')
            .map(|u| u.trim().trim_matches('`'))
            .filter(|u| !u.is_empty() && *u != "—")
            .map(str::to_owned)
            .collect();
        out.insert(module.to_owned(), uses);
    }
    assert!(!out.is_empty(), "the layers table is empty");
    out
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = graph();
    let g = &graph;
    let cycles: Vec<String> = g
        .cycles()
        .iter()
        .map(|c| {
            let edges: Vec<String> = c
                .iter()
                .flat_map(|from| {
                    g.edges[from]
                        .iter()
                        .filter(|to| c.contains(to))
                        .map(move |to| format!("{} -> {}", g.name(from), g.name(to)))
                })
                .collect();
            format!("{} files: {}", c.len(), edges.join(", "))
        })
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn every_edge_between_modules_is_one_the_page_allows() {
    let g = graph();
    let allowed = allowed();
    let mut errors = Vec::new();
    for file in g.edges.keys() {
        let Some(top) = g.top(file) else { continue };
        if !allowed.contains_key(top) {
            errors.push(format!(
                "{top} (from {}) is not in the table of docs/architecture.md",
                g.name(file)
            ));
        }
    }
    for (from, targets) in &g.edges {
        let Some(a) = g.top(from) else { continue };
        for to in targets {
            let Some(b) = g.top(to) else { continue };
            if a != b && !allowed.get(a).is_some_and(|u| u.contains(b)) {
                errors.push(format!(
                    "{} uses {}: docs/architecture.md does not let {a} use {b}",
                    g.name(from),
                    g.name(to)
                ));
            }
        }
    }
    errors.sort();
    errors.dedup();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// The checker itself: it must see the edges a file really has, or the two
/// tests above pass on anything.
#[test]
fn the_checker_sees_known_edges() {
    let g = graph();
    let edge = |from: &str, to: &str| {
        g.edges
            .get(&g.src.join(from))
            .is_some_and(|t| t.contains(&g.src.join(to)))
    };
    // `use super::{…, state::AppState}` in a handler.
    assert!(edge("http/notes.rs", "http/state.rs"));
    // `crate::store::…` through a `use crate::{…}` group.
    assert!(edge("index/writer.rs", "store/mod.rs"));
    // A path written inline in code, not in a `use`.
    assert!(edge("jobs/kinds.rs", "store/mod.rs"));
    // `pub use` followed to the defining file: jobs::Context is in context.rs.
    assert!(edge("http/state.rs", "jobs/context.rs"));
    assert!(!edge("store/mod.rs", "http/state.rs"));
}

/// The admin UI shares the use-cases (`service`) and the edge's helpers
/// (`transfer`, `ready`, `error`, `state`) with the API, never an API
/// handler module: a handler's shape is the API's contract, not a library.
#[test]
fn the_admin_ui_imports_no_api_handler_module() {
    let g = graph();
    let handlers: Vec<PathBuf> = [
        "notes",
        "jobs",
        "keys",
        "attachments",
        "search",
        "ingest",
        "ops",
    ]
    .iter()
    .map(|m| g.src.join(format!("http/{m}.rs")))
    .collect();
    let admin = g.src.join("http/admin");
    let mut errors = Vec::new();
    for (from, targets) in &g.edges {
        if !from.starts_with(&admin) {
            continue;
        }
        for to in targets.iter().filter(|t| handlers.contains(t)) {
            errors.push(format!("{} uses {}", g.name(from), g.name(to)));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // The edges the rule looks at are seen at all: the admin pages reach
    // the use-cases and the shared state.
    let pages = &g.edges[&g.src.join("http/admin/pages.rs")];
    assert!(pages.contains(&g.src.join("service/notes.rs")));
    assert!(pages.contains(&g.src.join("http/state.rs")));
}
