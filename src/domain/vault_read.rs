//! Reading a vault (issue #26, import): which files of a folder or a zip
//! are notes, what a Markdown or Obsidian file says (front matter, inline
//! `#tags`, title, embeds), and how an embed names another file of the
//! vault. Pure functions over paths and bytes, so they are tested without
//! a database, HTTP or a zip; `import` walks the files with them.
//!
//! The shapes come from what Obsidian writes and what `export` writes:
//! reading an export gives back the notes it was written from (see
//! [`parse_note`] for the link block an export appends).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use super::{
    note::{MAX_BODY_BYTES, MAX_TAGS, NoteDraft, NoteInput, normalize_tag},
    timestamp,
};

/// Why an entry of an archive is refused: it would write, or read,
/// outside the vault. The import stops at the first one (a zip made to
/// escape is hostile; nothing of it is trusted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafePath {
    #[error("entry {0:?} has an absolute path")]
    Absolute(String),
    #[error("entry {0:?} climbs out of the archive with '..'")]
    Parent(String),
    #[error("entry {0:?} has a NUL or control character in its name")]
    Control(String),
    #[error("entry {0:?} is a symbolic link")]
    Symlink(String),
    #[error("entry {0:?} is a device, pipe or socket, not a file")]
    Special(String),
}

/// The kind of an entry, from its Unix mode where the archive has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Special,
}

impl EntryKind {
    /// From the `st_mode` bits a zip made on Unix carries; `None` (a zip
    /// made elsewhere) is a file or, by its trailing `/`, a folder.
    pub fn from_mode(mode: Option<u32>, name_is_dir: bool) -> Self {
        const S_IFMT: u32 = 0o170000;
        match mode.map(|m| m & S_IFMT) {
            Some(0o120000) => Self::Symlink,
            Some(0o040000) => Self::Dir,
            Some(0o010000 | 0o020000 | 0o060000 | 0o140000) => Self::Special,
            _ if name_is_dir => Self::Dir,
            _ => Self::File,
        }
    }
}

/// An archive entry's name as a path relative to the vault's root, with
/// `/` separators and no `.` components; refused when it is absolute,
/// climbs out with `..`, holds a control character, or is a link or a
/// device. Backslashes are separators too (zips made on Windows use
/// them), so `..\x` is caught as well.
pub fn entry_path(name: &str, kind: EntryKind) -> Result<String, UnsafePath> {
    if name.chars().any(char::is_control) {
        return Err(UnsafePath::Control(name.escape_debug().to_string()));
    }
    let unified = name.replace('\\', "/");
    let drive = unified.len() >= 2
        && unified.as_bytes()[1] == b':'
        && unified.as_bytes()[0].is_ascii_alphabetic();
    if unified.starts_with('/') || drive {
        return Err(UnsafePath::Absolute(name.to_owned()));
    }
    let mut parts = Vec::new();
    for part in unified.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(UnsafePath::Parent(name.to_owned())),
            p => parts.push(p),
        }
    }
    match kind {
        EntryKind::Symlink => return Err(UnsafePath::Symlink(name.to_owned())),
        EntryKind::Special => return Err(UnsafePath::Special(name.to_owned())),
        EntryKind::File | EntryKind::Dir => {}
    }
    Ok(parts.join("/"))
}

/// Why a file of the vault is not read: listed in the import's result.
pub fn skip_reason(path: &str) -> Option<&'static str> {
    let mut parts = path.split('/');
    let first = parts.next().unwrap_or_default();
    if first == ".obsidian" {
        return Some("Obsidian settings (.obsidian/)");
    }
    if first == ".trash" {
        return Some("Obsidian trash (.trash/)");
    }
    if first == "__MACOSX" {
        return Some("macOS archive metadata (__MACOSX/)");
    }
    if path.split('/').any(|p| p.starts_with('.')) {
        return Some("hidden file (dot-file)");
    }
    None
}

/// Whether the file is a note (Markdown) rather than a file notes embed.
pub fn is_note(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".md") || lower.ends_with(".markdown")
}

/// The folder of a vault path (`""` at the root).
pub fn folder(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The last component of a path.
pub fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

fn file_stem(path: &str) -> &str {
    let name = file_name(path);
    match name.rfind('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    }
}

/// What cannot be read of a file: it is skipped and listed with its path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("not valid UTF-8 (byte {0})")]
    Utf8(usize),
    #[error("the front matter is not valid YAML: {0}")]
    FrontMatter(String),
    #[error("the front matter is not a mapping of keys to values")]
    FrontMatterShape,
    #[error("the front matter has no closing '---' line")]
    Unclosed,
    #[error("the body is {0} bytes, over the limit of {MAX_BODY_BYTES}")]
    TooLarge(usize),
    #[error("{0}")]
    Invalid(String),
}

/// An embed or a link to a file that is not a note: it becomes an
/// attachment of the note, once resolved against the vault's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embed {
    /// As written in the link: `photo.png`, `img/photo.png`, `../x.pdf`.
    pub target: String,
}

/// A note file read: the note, and what only the import uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedNote {
    pub input: NoteInput,
    /// The `id` of a notes-api export: the note is matched and created by it.
    pub id: Option<Uuid>,
    pub created: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
    /// Files this note embeds or links to, in order, without duplicates.
    pub embeds: Vec<Embed>,
}

/// Where a note file came from, and what the import adds to every note.
pub struct NoteSource<'a> {
    /// The path relative to the vault's root.
    pub path: &'a str,
    /// A tag added to every note (already normalized).
    pub extra_tag: Option<&'a str>,
    /// The folder becomes a tag too (`Projects/2024` → `projects.2024`).
    pub folder_tag: bool,
}

/// Reads one Markdown or Obsidian note file.
///
/// - The front matter (`---` … `---` at the top) gives `title`, `id`,
///   `external_id`, `tags` (or `tag`; a list or a string split at commas
///   and spaces), `created`, `updated` and `metadata` (a mapping);
///   `aliases` and anything else go into `metadata` under their own key.
/// - Inline `#tags` are added (see [`inline_tags`]). Tags are normalized
///   to the tag rules (`/` of a nested tag becomes `.`); one that cannot
///   be is kept in `metadata.unmapped_tags` rather than lost.
/// - The title is the front matter's, else the first `# heading`, else
///   the file's name.
/// - The folder is kept in `metadata.path` (unless the metadata has one).
/// - `external_id` is the front matter's, else `vault:<path>` unless the
///   file carries an export's `id` (the note is then matched by its id).
/// - A block of links into `attachments/<file stem>/` at the end is what
///   an export appends: it is removed from the body, and its targets are
///   the note's attachments, so export → import → export gives the same
///   file. Exports add a line break before the block when the body does
///   not end in one; it is taken off again (a body that did end in one
///   loses it: the two are written alike).
pub fn parse_note(source: &NoteSource<'_>, bytes: &[u8]) -> Result<ParsedNote, FileError> {
    let text = std::str::from_utf8(bytes).map_err(|e| FileError::Utf8(e.valid_up_to()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (front, body) = split_front_matter(text)?;
    let mut fm = match front {
        Some(yaml) => read_front_matter(yaml)?,
        None => Map::new(),
    };

    let stem = file_stem(source.path);
    let (body, exported) = strip_export_links(body, stem);
    if body.len() > MAX_BODY_BYTES {
        return Err(FileError::TooLarge(body.len()));
    }

    let mut metadata = match fm.remove("metadata") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => Map::new(),
        Some(other) => {
            let mut m = Map::new();
            m.insert("metadata".into(), other);
            m
        }
    };
    let id = take_string(&mut fm, "id").and_then(|s| match Uuid::parse_str(&s) {
        Ok(id) => Some(id),
        Err(_) => {
            metadata.entry("id").or_insert(Value::String(s));
            None
        }
    });
    // A notes-api export's file (it carries the note's id) was written
    // from the note: its title is the front matter's or the file's name,
    // its tags are the front matter's. Reading headings and `#words` of
    // its body would change the note on a round trip.
    let from_export = id.is_some();
    let title = match fm.remove("title") {
        Some(Value::String(t)) if !t.trim().is_empty() => Some(t),
        Some(Value::Null) | None => None,
        Some(other) => Some(scalar_text(&other)),
    }
    .or_else(|| (!from_export).then(|| first_heading(&body)).flatten())
    .unwrap_or_else(|| stem.to_owned());

    let external_id = take_string(&mut fm, "external_id");
    let created = take_time(&mut fm, "created", &mut metadata);
    let updated = take_time(&mut fm, "updated", &mut metadata);

    let mut raw_tags = Vec::new();
    for key in ["tags", "tag"] {
        if let Some(v) = fm.remove(key) {
            collect_tags(&v, &mut raw_tags);
        }
    }
    if !from_export {
        raw_tags.extend(inline_tags(&body));
    }
    let dir = folder(source.path);
    if source.folder_tag && !dir.is_empty() {
        // Folder names hold spaces, which no tag does.
        raw_tags.push(dir.replace(char::is_whitespace, "-"));
    }
    if let Some(tag) = source.extra_tag {
        raw_tags.push(tag.to_owned());
    }
    let mut tags: Vec<String> = Vec::new();
    let mut unmapped: Vec<Value> = Vec::new();
    for raw in raw_tags {
        match tag_of(&raw) {
            // Past the most a note holds, a tag is kept with the others
            // that could not be: the note is still imported.
            Some(t) if !tags.contains(&t) && tags.len() < MAX_TAGS => tags.push(t),
            Some(t) if tags.contains(&t) => {}
            Some(_) | None => {
                let v = Value::String(raw);
                if !unmapped.contains(&v) {
                    unmapped.push(v);
                }
            }
        }
    }
    // Anything else of the front matter (aliases, cssclasses, a plugin's
    // keys) is kept, under its own name.
    for (k, v) in fm {
        metadata.entry(k).or_insert(v);
    }
    if !unmapped.is_empty() {
        metadata
            .entry("unmapped_tags")
            .or_insert(Value::Array(unmapped));
    }
    if !dir.is_empty() {
        metadata
            .entry("path")
            .or_insert_with(|| Value::String(dir.to_owned()));
    }
    let external_id = match (external_id, id) {
        (Some(ext), _) => Some(ext),
        (None, Some(_)) => None,
        (None, None) => Some(format!("vault:{}", source.path)),
    };

    let mut embeds = exported;
    for e in find_embeds(&body) {
        if !embeds.contains(&e) {
            embeds.push(e);
        }
    }
    let draft = NoteDraft {
        title,
        body,
        tags,
        external_id,
        metadata: Some(Value::Object(metadata)),
    };
    let input = draft.validate().map_err(|errors| {
        FileError::Invalid(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    Ok(ParsedNote {
        input,
        id,
        created,
        updated,
        embeds,
    })
}

/// (front matter, body): the front matter is the YAML between a first
/// line `---` and the next line `---` (or `...`).
fn split_front_matter(text: &str) -> Result<(Option<&str>, &str), FileError> {
    let rest = match text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    {
        Some(rest) => rest,
        None => return Ok((None, text)),
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare == "---" || bare == "..." {
            return Ok((Some(&rest[..offset]), &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    // `---` then no end: a thematic break, as Markdown reads it, when
    // nothing in it looks like a key.
    if rest.lines().take(3).any(|l| l.contains(": ")) {
        Err(FileError::Unclosed)
    } else {
        Ok((None, text))
    }
}

fn read_front_matter(yaml: &str) -> Result<Map<String, Value>, FileError> {
    if yaml.trim().is_empty() {
        return Ok(Map::new());
    }
    let value: Value = serde_norway::from_str(yaml).map_err(|e| {
        // The parser's message names the line and column; enough to fix
        // it, never the whole text.
        FileError::FrontMatter(e.to_string())
    })?;
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(FileError::FrontMatterShape),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn take_string(fm: &mut Map<String, Value>, key: &str) -> Option<String> {
    match fm.remove(key)? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        v => Some(scalar_text(&v)),
    }
}

/// A time of the front matter: RFC 3339, or a date (`2024-03-01`), or a
/// date and time without a zone (read as UTC), as Obsidian's templates
/// write them. One that does not parse stays in the metadata as written.
fn take_time(
    fm: &mut Map<String, Value>,
    key: &str,
    metadata: &mut Map<String, Value>,
) -> Option<DateTime<Utc>> {
    let v = fm.remove(key)?;
    let s = match &v {
        Value::String(s) => s.trim(),
        Value::Null => return None,
        _ => {
            metadata.entry(key).or_insert(v);
            return None;
        }
    };
    let parsed = timestamp::parse(s).ok().or_else(|| {
        [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .map(|t| t.and_utc())
    });
    if parsed.is_none() {
        metadata.entry(key).or_insert(v);
    }
    parsed
}

/// Tags as the front matter may hold them: a list, or a string of tags
/// separated by commas or spaces; a leading `#` is dropped.
fn collect_tags(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect_tags(i, out)),
        Value::String(s) => out.extend(
            s.split([',', ' '])
                .map(|t| t.trim().trim_start_matches('#'))
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        ),
        Value::Number(n) => out.push(n.to_string()),
        Value::Bool(b) => out.push(b.to_string()),
        Value::Null | Value::Object(_) => {}
    }
}

/// An Obsidian tag made to follow the tag rules: lower case, a nested
/// tag's `/` as `.` (`#project/alpha` → `project.alpha`); `None` when
/// what is left still breaks them (other scripts, too long).
pub fn tag_of(raw: &str) -> Option<String> {
    let t: String = raw
        .trim()
        .trim_start_matches('#')
        .chars()
        .map(|c| if c == '/' { '.' } else { c })
        .collect();
    normalize_tag(t.trim_matches('.'))
}

/// Inline `#tags` of a body, as Obsidian reads them: `#` at the start or
/// after white space, then letters, digits, `_`, `-` or `/`, not only
/// digits. Not in fenced or indented code blocks, not in inline code, not
/// a heading (`# Title` has a space), not a URL's `#fragment` (it follows
/// no space).
pub fn inline_tags(body: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in prose_lines(body).filter(|l| !is_link_definition(l)) {
        let mut in_code = false;
        let mut prev: Option<char> = None;
        let mut chars = line.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '`' {
                in_code = !in_code;
            } else if c == '#' && !in_code && prev.is_none_or(char::is_whitespace) {
                let rest = &line[i + 1..];
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '/')))
                    .unwrap_or(rest.len());
                let tag = rest[..end].trim_end_matches('/');
                if !tag.is_empty() && !tag.chars().all(|c| c.is_ascii_digit()) {
                    if !out.iter().any(|t| t == tag) {
                        out.push(tag.to_owned());
                    }
                    while chars.peek().is_some_and(|(j, _)| *j <= i + end) {
                        chars.next();
                    }
                    prev = None;
                    continue;
                }
            }
            prev = Some(c);
        }
    }
    out
}

/// A link reference definition (`[label]: #anchor "title"`): its
/// destination is a URL, a `#fragment` there is no tag.
fn is_link_definition(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with('[') && t.find("]:").is_some_and(|i| i > 1)
}

/// The lines of a body outside fenced code blocks (``` or ~~~) and
/// indented code, where tags, headings and embeds mean something.
fn prose_lines(body: &str) -> impl Iterator<Item = &str> {
    let mut fence: Option<&str> = None;
    body.lines().filter(move |line| {
        let trimmed = line.trim_start();
        if let Some(f) = fence {
            if trimmed.starts_with(f) {
                fence = None;
            }
            return false;
        }
        for f in ["```", "~~~"] {
            if trimmed.starts_with(f) {
                fence = Some(f);
                return false;
            }
        }
        !(line.starts_with("    ") || line.starts_with('\t'))
    })
}

/// The first level-one ATX heading outside code: `# Title`.
fn first_heading(body: &str) -> Option<String> {
    prose_lines(body).find_map(|l| {
        let t = l.strip_prefix("# ")?.trim().trim_end_matches('#').trim();
        (!t.is_empty()).then(|| t.to_owned())
    })
}

/// Embeds and links to files that are not notes: `![[file]]`,
/// `[[file.pdf]]` (a wiki link with an extension other than `.md`), and
/// `![alt](relative/path)` (not a URL). An alias (`|…`) or heading
/// (`#…`) after the target is dropped; `%20` and the like are decoded.
pub fn find_embeds(body: &str) -> Vec<Embed> {
    let mut out: Vec<Embed> = Vec::new();
    let mut push = |target: String| {
        let e = Embed { target };
        if !e.target.is_empty() && !out.contains(&e) {
            out.push(e);
        }
    };
    for line in prose_lines(body) {
        let mut rest = line;
        while let Some(i) = rest.find("[[") {
            // `![[x]]` and `[[x]]` alike: a link to a file that is not a
            // note (one with an extension other than .md) is an attachment.
            let after = &rest[i + 2..];
            let Some(end) = after.find("]]") else { break };
            let inner = &after[..end];
            // `[[` that opens no wiki link (a link inside brackets, code):
            // a target never holds brackets or backticks.
            if inner.contains(['[', ']', '`']) {
                rest = after;
                continue;
            }
            let target = inner
                .split(['|', '#', '^'])
                .next()
                .unwrap_or_default()
                .trim();
            if extension(target).is_some() && !is_note(target) {
                push(target.to_owned());
            }
            rest = &after[end + 2..];
        }
        let mut rest = line;
        while let Some(i) = rest.find("![") {
            let after = &rest[i + 2..];
            let Some(close) = after.find("](") else { break };
            let url_part = &after[close + 2..];
            let Some(end) = url_part.find(')') else { break };
            let mut url = url_part[..end].trim();
            if let Some(inner) = url.strip_prefix('<') {
                url = inner.split('>').next().unwrap_or_default();
            } else if let Some((u, _title)) = url.split_once(" \"") {
                url = u;
            }
            let is_remote = url.contains("://")
                || url.starts_with("data:")
                || url.starts_with("mailto:")
                || url.starts_with('#');
            if !is_remote && !url.is_empty() {
                let decoded = percent_encoding::percent_decode_str(url)
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .unwrap_or_else(|_| url.to_owned());
                if !is_note(&decoded) {
                    push(decoded);
                }
            }
            rest = &url_part[end + 1..];
        }
    }
    out
}

fn extension(path: &str) -> Option<String> {
    let name = file_name(path);
    let i = name.rfind('.')?;
    (i > 0 && i + 1 < name.len()).then(|| name[i + 1..].to_ascii_lowercase())
}

/// The block of links an export writes at the end of a note
/// (`![[attachments/<stem>/…]]` or `[[attachments/<stem>/…]]`, one a line,
/// after an empty line): the body without it, and its targets.
fn strip_export_links(body: &str, stem: &str) -> (String, Vec<Embed>) {
    let prefix = format!("attachments/{stem}/");
    let mut lines: Vec<&str> = body.split_inclusive('\n').collect();
    let mut links = Vec::new();
    while let Some(last) = lines.last() {
        let bare = last.strip_suffix('\n').unwrap_or(last);
        if !last.ends_with('\n') {
            break;
        }
        let inner = bare
            .strip_prefix("![[")
            .or_else(|| bare.strip_prefix("[["))
            .and_then(|l| l.strip_suffix("]]"));
        match inner {
            Some(target) if target.starts_with(&prefix) && !target.contains(['|', '#']) => {
                links.push(Embed {
                    target: target.to_owned(),
                });
                lines.pop();
            }
            _ => break,
        }
    }
    if links.is_empty() || lines.last() != Some(&"\n") {
        return (body.to_owned(), Vec::new());
    }
    lines.pop();
    links.reverse();
    let mut kept: String = lines.concat();
    // Export wrote "\n" after a body that did not end in one.
    if kept.ends_with('\n') {
        kept.pop();
    }
    (kept, links)
}

/// The files of a vault, for resolving embeds as Obsidian does: the path
/// as written relative to the note's folder, then relative to the vault's
/// root, then the file of that name anywhere (the first in path order).
/// Paths are compared in Unicode NFC: a zip made on macOS names `café`
/// with a combining accent where the note's link has the composed one.
/// Holds paths only, never content.
#[derive(Default)]
pub struct VaultIndex {
    /// NFC path → the path as the vault spells it.
    paths: HashMap<String, String>,
    /// Lower-cased NFC file name → the first path in order with it.
    by_name: HashMap<String, String>,
}

fn nfc(s: &str) -> String {
    s.nfc().collect()
}

impl VaultIndex {
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> Self {
        let sorted: BTreeMap<&str, ()> = paths.into_iter().map(|p| (p, ())).collect();
        let mut index = Self::default();
        for p in sorted.keys() {
            index.paths.entry(nfc(p)).or_insert_with(|| (*p).to_owned());
            index
                .by_name
                .entry(nfc(file_name(p)).to_lowercase())
                .or_insert_with(|| (*p).to_owned());
        }
        index
    }

    /// The vault path an embed in the note at `note_path` names.
    pub fn resolve(&self, note_path: &str, target: &str) -> Option<String> {
        let dir = folder(note_path);
        let relative = if dir.is_empty() {
            normalize(target)
        } else {
            normalize(&format!("{dir}/{target}"))
        };
        for candidate in [relative, normalize(target)].into_iter().flatten() {
            if let Some(p) = self.paths.get(&nfc(&candidate)) {
                return Some(p.clone());
            }
        }
        self.by_name
            .get(&nfc(file_name(target)).to_lowercase())
            .cloned()
    }
}

/// `a/./b/../c` → `a/c`; `None` when it climbs above the root.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// A content type for an attachment from its extension: a vault has no
/// other. The common kinds a vault holds; everything else is
/// `application/octet-stream` (see docs/decisions.md).
pub fn content_type_of(path: &str) -> &'static str {
    match extension(path).as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("svg") => "image/svg+xml",
        Some("bmp") => "image/bmp",
        Some("avif") => "image/avif",
        Some("tif" | "tiff") => "image/tiff",
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        Some("md" | "markdown") => "text/markdown",
        Some("csv") => "text/csv",
        Some("json") => "application/json",
        Some("html" | "htm") => "text/html",
        Some("mp3") => "audio/mpeg",
        Some("wav") => "audio/wav",
        Some("ogg") => "audio/ogg",
        Some("m4a") => "audio/mp4",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mov") => "video/quicktime",
        Some("zip") => "application/zip",
        _ => super::attachment::OCTET_STREAM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(path: &str, text: &str) -> ParsedNote {
        parse_note(
            &NoteSource {
                path,
                extra_tag: None,
                folder_tag: false,
            },
            text.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn entry_paths_never_escape() {
        let f = EntryKind::File;
        assert_eq!(entry_path("a/b.md", f).unwrap(), "a/b.md");
        assert_eq!(entry_path("./a//b.md", f).unwrap(), "a/b.md");
        assert_eq!(entry_path("a\\b.md", f).unwrap(), "a/b.md");
        assert!(matches!(
            entry_path("../x.md", f),
            Err(UnsafePath::Parent(_))
        ));
        assert!(matches!(
            entry_path("a/../../x.md", f),
            Err(UnsafePath::Parent(_))
        ));
        assert!(matches!(
            entry_path("..\\x.md", f),
            Err(UnsafePath::Parent(_))
        ));
        assert!(matches!(
            entry_path("/etc/passwd", f),
            Err(UnsafePath::Absolute(_))
        ));
        assert!(matches!(
            entry_path("C:\\x.md", f),
            Err(UnsafePath::Absolute(_))
        ));
        assert!(matches!(entry_path("a\0b", f), Err(UnsafePath::Control(_))));
        assert!(matches!(
            entry_path("link", EntryKind::from_mode(Some(0o120777), false)),
            Err(UnsafePath::Symlink(_))
        ));
        assert!(matches!(
            entry_path("dev", EntryKind::from_mode(Some(0o020644), false)),
            Err(UnsafePath::Special(_))
        ));
        assert_eq!(EntryKind::from_mode(Some(0o100644), false), EntryKind::File);
        assert_eq!(EntryKind::from_mode(None, true), EntryKind::Dir);
    }

    #[test]
    fn settings_trash_and_dot_files_are_skipped() {
        assert!(skip_reason(".obsidian/app.json").is_some());
        assert!(skip_reason(".trash/old.md").is_some());
        assert!(skip_reason("a/.DS_Store").is_some());
        assert!(skip_reason("__MACOSX/._a.md").is_some());
        assert_eq!(skip_reason("a/b.md"), None);
        assert!(is_note("A/B.MD") && is_note("x.markdown") && !is_note("x.png"));
    }

    #[test]
    fn front_matter_in_the_shapes_obsidian_writes() {
        let n = parse(
            "Projects/alpha.md",
            "---\ntags:\n  - Work\n  - project/alpha\naliases: [Alpha, A]\ncreated: 2024-03-01\nupdated: 2024-03-02T10:11:12Z\nstatus: draft\n---\nBody #inline text\n",
        );
        assert_eq!(n.input.title, "alpha");
        assert_eq!(n.input.tags, ["work", "project.alpha", "inline"]);
        assert_eq!(
            n.input.external_id.as_deref(),
            Some("vault:Projects/alpha.md")
        );
        assert_eq!(n.input.metadata["aliases"], json!(["Alpha", "A"]));
        assert_eq!(n.input.metadata["status"], "draft");
        assert_eq!(n.input.metadata["path"], "Projects");
        assert_eq!(n.input.body, "Body #inline text\n");
        assert_eq!(
            timestamp::format(&n.created.unwrap()),
            "2024-03-01T00:00:00.000000Z"
        );
        assert_eq!(
            timestamp::format(&n.updated.unwrap()),
            "2024-03-02T10:11:12.000000Z"
        );

        let n = parse("s.md", "---\ntags: a, b c\ntitle: Given\n---\n");
        assert_eq!(n.input.tags, ["a", "b", "c"]);
        assert_eq!(n.input.title, "Given");
        let n = parse("e.md", "---\ntags:\naliases:\n---\n# Heading one\ntext");
        assert!(n.input.tags.is_empty());
        assert_eq!(n.input.title, "Heading one");
        assert_eq!(n.input.metadata["aliases"], Value::Null);
        let n = parse("d.md", "---\ncreated: not a date\n---\n");
        assert!(n.created.is_none());
        assert_eq!(n.input.metadata["created"], "not a date");
        let n = parse("t.md", "---\ntags: [日本語, ok]\n---\n");
        assert_eq!(n.input.tags, ["ok"]);
        assert_eq!(n.input.metadata["unmapped_tags"], json!(["日本語"]));
        // More tags than a note holds: the note is kept, the rest listed.
        let many: String = (0..70).map(|i| format!("#t{i} ")).collect();
        let n = parse("many.md", &many);
        assert_eq!(n.input.tags.len(), MAX_TAGS);
        assert_eq!(
            n.input.metadata["unmapped_tags"].as_array().unwrap().len(),
            6
        );
    }

    #[test]
    fn unreadable_files_say_why() {
        let src = NoteSource {
            path: "x.md",
            extra_tag: None,
            folder_tag: false,
        };
        assert!(matches!(
            parse_note(&src, b"ok \xff bad"),
            Err(FileError::Utf8(3))
        ));
        assert!(matches!(
            parse_note(&src, b"---\ntags: [unclosed\n---\n"),
            Err(FileError::FrontMatter(_))
        ));
        assert!(matches!(
            parse_note(&src, b"---\n- a list\n---\n"),
            Err(FileError::FrontMatterShape)
        ));
        assert!(matches!(
            parse_note(&src, b"---\ntitle: x\nno end"),
            Err(FileError::Unclosed)
        ));
        let big = "a".repeat(MAX_BODY_BYTES + 1);
        assert!(matches!(
            parse_note(&src, big.as_bytes()),
            Err(FileError::TooLarge(_))
        ));
        // `---` with no keys is a horizontal rule, not front matter.
        assert_eq!(parse("hr.md", "---\ntext\n").input.body, "---\ntext\n");
    }

    #[test]
    fn inline_tags_skip_code_headings_and_urls() {
        let body = "# Heading\n#top and #a/b/c, #Mixed_Case #123 #v2\n\
                    see http://x.org/page#frag and [l](#anchor)\n\
                    `#notcode` here\n```\n#incode\n```\n    #indented\n##not\n";
        assert_eq!(inline_tags(body), ["top", "a/b/c", "Mixed_Case", "v2"]);
        // A link reference definition's destination is a URL.
        assert!(inline_tags("[Error handling]: #error-handling\n  [x]: #y").is_empty());
        assert_eq!(tag_of("a/b/c").as_deref(), Some("a.b.c"));
        assert_eq!(tag_of("#Mixed_Case").as_deref(), Some("mixed_case"));
        assert_eq!(tag_of("日本"), None);
    }

    #[test]
    fn embeds_of_every_kind() {
        let body = "![[photo.png]] and ![[img/diagram.svg|300]] and [[paper.pdf#page=2]]\n\
                    [[Other note]] ![[Other note]] [[note.md]]\n\
                    ![alt](rel/a%20b.jpg \"t\") ![x](https://e.org/x.png) ![y](<sp ace.gif>)\n\
                    ```\n![[incode.png]]\n```\n\
                    [[`492e`](https://x.org/c)] - add write(string\\[, position\\[, enc.txt]]\n";
        let targets: Vec<_> = find_embeds(body).into_iter().map(|e| e.target).collect();
        assert_eq!(
            targets,
            [
                "photo.png",
                "img/diagram.svg",
                "paper.pdf",
                "rel/a b.jpg",
                "sp ace.gif"
            ]
        );
    }

    #[test]
    fn embeds_resolve_as_obsidian_does() {
        let index = VaultIndex::new(["a/photo.png", "b/photo.png", "img/x.png", "a/img/x.png"]);
        assert_eq!(
            index.resolve("a/n.md", "photo.png").as_deref(),
            Some("a/photo.png")
        );
        assert_eq!(
            index.resolve("c/n.md", "photo.png").as_deref(),
            Some("a/photo.png")
        );
        assert_eq!(
            index.resolve("a/n.md", "img/x.png").as_deref(),
            Some("a/img/x.png")
        );
        assert_eq!(
            index.resolve("c/n.md", "img/x.png").as_deref(),
            Some("img/x.png")
        );
        assert_eq!(
            index.resolve("a/n.md", "../b/photo.png").as_deref(),
            Some("b/photo.png")
        );
        assert_eq!(index.resolve("n.md", "missing.png"), None);
        // A macOS zip's decomposed name, a link's composed one.
        let index = VaultIndex::new(["Caf\u{65}\u{301}/photo \u{e9}.png"]);
        assert_eq!(
            index
                .resolve("Caf\u{e9}/n.md", "photo \u{e9}.png")
                .as_deref(),
            Some("Caf\u{65}\u{301}/photo \u{e9}.png")
        );
        assert_eq!(
            index.resolve("x.md", "PHOTO \u{c9}.png").as_deref(),
            Some("Caf\u{65}\u{301}/photo \u{e9}.png")
        );
    }

    #[test]
    fn an_exports_link_block_is_taken_off_again() {
        let text = "---\nid: \"0190a0b0-0000-7000-8000-000000000001\"\ntags: []\n\
                    created: \"2026-01-02T03:04:05.000006Z\"\nupdated: \"2026-01-02T03:04:05.000006Z\"\n---\n\
                    Packing list\n\n![[attachments/Trip/beach.jpg]]\n[[attachments/Trip/tickets.pdf]]\n";
        let n = parse("Trip.md", text);
        assert_eq!(n.input.body, "Packing list");
        assert_eq!(n.input.external_id, None);
        assert_eq!(
            n.id,
            Some(Uuid::parse_str("0190a0b0-0000-7000-8000-000000000001").unwrap())
        );
        let targets: Vec<_> = n.embeds.iter().map(|e| e.target.as_str()).collect();
        assert_eq!(
            targets,
            ["attachments/Trip/beach.jpg", "attachments/Trip/tickets.pdf"]
        );
        assert!(n.input.metadata.is_empty(), "{:?}", n.input.metadata);
        // An empty body: the block follows the front matter's blank line.
        let n = parse("E.md", "---\ntags: []\n---\n\n![[attachments/E/x.png]]\n");
        assert_eq!(n.input.body, "");
        assert_eq!(n.embeds.len(), 1);
        // Links into another note's folder are the body's own.
        let n = parse("F.md", "x\n\n![[attachments/G/x.png]]\n");
        assert_eq!(n.input.body, "x\n\n![[attachments/G/x.png]]\n");
    }

    #[test]
    fn the_export_front_matter_reads_back() {
        let meta: Map<String, Value> =
            serde_json::from_value(json!({"k": [1, "two", {"n": null}], "path": "x"})).unwrap();
        let tags = vec!["a".to_owned(), "b.c".to_owned()];
        let t = timestamp::parse("2026-01-02T03:04:05.000006Z").unwrap();
        let front = super::super::vault::FrontMatter {
            id: Uuid::nil(),
            title: Some("a/b: \"quoted\" #x"),
            tags: &tags,
            created: t,
            updated: t,
            external_id: Some("ext:1"),
            metadata: &meta,
        }
        .render();
        let n = parse("a-b- -quoted- -x.md", &format!("{front}body"));
        assert_eq!(n.input.title, "a/b: \"quoted\" #x");
        assert_eq!(n.input.tags, tags);
        assert_eq!(n.input.external_id.as_deref(), Some("ext:1"));
        assert_eq!(n.input.metadata, meta);
        assert_eq!(n.created, Some(t));
        assert_eq!(n.updated, Some(t));
        assert_eq!(n.id, Some(Uuid::nil()));
    }

    #[test]
    fn an_extra_tag_is_added_and_content_types_come_from_extensions() {
        let n = parse_note(
            &NoteSource {
                path: "x.md",
                extra_tag: Some("imported"),
                folder_tag: false,
            },
            b"#a",
        )
        .unwrap();
        assert_eq!(n.input.tags, ["a", "imported"]);
        let n = parse_note(
            &NoteSource {
                path: "My Projects/2024/x.md",
                extra_tag: None,
                folder_tag: true,
            },
            b"#a",
        )
        .unwrap();
        assert_eq!(n.input.tags, ["a", "my-projects.2024"]);
        assert_eq!(n.input.metadata["path"], "My Projects/2024");
        assert_eq!(content_type_of("x/Y.PNG"), "image/png");
        assert_eq!(content_type_of("x.unknown"), "application/octet-stream");
    }
}
