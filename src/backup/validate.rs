//! A snapshot is input like any other: it may come from another
//! deployment, an old version or an attacker with write access to the
//! bucket. Every record is held to the rules the API applies, every storage
//! key must be one the server could have generated, and every read is
//! bounded, so a hostile snapshot is refused whole instead of crashing a
//! process or pointing rows at objects it does not own.

use crate::{
    domain::{
        attachment::{normalize_content_type, sanitize_filename, storage_key},
        keys::{KEY_PREFIX, KeyRequest},
        note::{MAX_NOTE_JSON_BYTES, MAX_NOTE_VERSION, NoteDraft},
    },
    store::Record,
};

/// The manifest lists every object (about 150 bytes each): this allows a
/// few hundred thousand attachments and stops a gigabyte "manifest".
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// One line of `records.ndjson`: a note, or an attachment with its
/// extracted text (at most NOTES_EXTRACT_MAX_BYTES, JSON-escaped).
pub fn max_record_bytes(extract_max_bytes: u64) -> usize {
    let text = usize::try_from(extract_max_bytes.saturating_mul(6)).unwrap_or(usize::MAX);
    MAX_NOTE_JSON_BYTES.max(text) + 64 * 1024
}

pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Object keys are `attachments/<note uuid>/<attachment uuid>`, exactly as
/// [`storage_key`] writes them: no other key may be read or written.
pub fn check_object_key(key: &str) -> Result<(), String> {
    let ours = key
        .strip_prefix(crate::domain::attachment::KEY_PREFIX)
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(note, id)| {
            Some((
                uuid::Uuid::parse_str(note).ok()?,
                uuid::Uuid::parse_str(id).ok()?,
            ))
        })
        .is_some_and(|(note, id)| storage_key(note, id) == key);
    if ours {
        Ok(())
    } else {
        Err(format!("{key:?} is not a storage key this service writes"))
    }
}

/// A record is restored only if the API would have accepted it as it is.
pub fn check_record(record: &Record, extract_max_bytes: u64) -> Result<(), String> {
    match record {
        Record::Note(note) => {
            let draft = NoteDraft {
                title: note.title.clone(),
                body: note.body.clone(),
                tags: note.tags.clone(),
                external_id: note.external_id.clone(),
                metadata: Some(serde_json::Value::Object(note.metadata.clone())),
            };
            let valid = draft.validate().map_err(|errors| {
                let first = errors.first().map(ToString::to_string).unwrap_or_default();
                format!("note {} breaks the note rules: {first}", note.id)
            })?;
            if valid.title != note.title || valid.tags != note.tags {
                return Err(format!("note {} is not in its normal form", note.id));
            }
            if !(1..=MAX_NOTE_VERSION).contains(&note.version) {
                return Err(format!(
                    "note {} has version {}; a version is 1 to {MAX_NOTE_VERSION}",
                    note.id, note.version
                ));
            }
            Ok(())
        }
        Record::Attachment {
            attachment: a,
            storage_key: key,
            search_text,
        } => {
            if *key != storage_key(a.note_id, a.id) {
                return Err(format!(
                    "attachment {} points at {key:?}, not at its own object",
                    a.id
                ));
            }
            if !is_sha256(&a.sha256) {
                return Err(format!("attachment {} has no valid sha256", a.id));
            }
            if sanitize_filename(&a.filename) != a.filename
                || normalize_content_type(Some(&a.content_type)) != a.content_type
            {
                return Err(format!(
                    "attachment {} has a filename or content type the API would not store",
                    a.id
                ));
            }
            if search_text.len() as u64 > extract_max_bytes.saturating_mul(4)
                || search_text.contains('\0')
            {
                return Err(format!("attachment {} has unusable search text", a.id));
            }
            Ok(())
        }
        Record::Trashed {
            note_id,
            deleted_by,
            ..
        } => {
            if deleted_by
                .as_ref()
                .is_some_and(|by| by.len() > 64 || by.chars().any(char::is_control))
            {
                return Err(format!("trashed note {note_id} names an unusable author"));
            }
            Ok(())
        }
        Record::Revision { note_id, revision } => {
            let draft = NoteDraft {
                title: revision.title.clone(),
                body: revision.body.clone(),
                tags: revision.tags.clone(),
                external_id: None,
                metadata: Some(serde_json::Value::Object(revision.metadata.clone())),
            };
            let valid = draft.validate().map_err(|errors| {
                let first = errors.first().map(ToString::to_string).unwrap_or_default();
                format!(
                    "revision {} of note {note_id} breaks the note rules: {first}",
                    revision.version
                )
            })?;
            if valid.title != revision.title || valid.tags != revision.tags {
                return Err(format!(
                    "revision {} of note {note_id} is not in its normal form",
                    revision.version
                ));
            }
            if !(1..MAX_NOTE_VERSION).contains(&revision.version) {
                return Err(format!(
                    "revision {} of note {note_id}: a revision's version is 1 to {}",
                    revision.version,
                    MAX_NOTE_VERSION - 1
                ));
            }
            if revision
                .changed_by
                .as_ref()
                .is_some_and(|by| by.len() > 64 || by.chars().any(char::is_control))
            {
                return Err(format!(
                    "revision {} of note {note_id} names an unusable author",
                    revision.version
                ));
            }
            Ok(())
        }
        Record::Webhook {
            webhook,
            sealed_secret,
        } => {
            let patch = crate::domain::webhook::WebhookPatch {
                url: Some(webhook.url.clone()),
                events: Some(webhook.events.clone()),
                description: webhook.description.clone(),
                ..Default::default()
            };
            patch
                .validate()
                .map_err(|_| format!("webhook {} breaks the webhook rules", webhook.id))?;
            if !sealed_secret.starts_with("v1.") || sealed_secret.len() > 256 {
                return Err(format!("webhook {} has a malformed secret", webhook.id));
            }
            Ok(())
        }
        Record::Key { key, hash } => {
            let request = KeyRequest {
                name: key.name.clone(),
                scopes: key.scopes.clone(),
            };
            request
                .validate()
                .map_err(|_| format!("key {} breaks the key rules", key.id))?;
            let prefix_ok = key.prefix.starts_with(KEY_PREFIX)
                && key.prefix.len() <= 32
                && key
                    .prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !is_sha256(hash) || !prefix_ok {
                return Err(format!("key {} has a malformed hash or prefix", key.id));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_the_server_writes_pass() {
        let note = uuid::Uuid::now_v7();
        let id = uuid::Uuid::now_v7();
        assert!(check_object_key(&storage_key(note, id)).is_ok());
        for bad in [
            "../../etc/passwd".to_owned(),
            format!("attachments/{note}/../{id}"),
            format!("attachments/{note}/{id}/x"),
            format!("attachments/{}/{id}", note.to_string().to_uppercase()),
            format!("backups/{note}/{id}"),
            String::new(),
        ] {
            assert!(check_object_key(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sha256_is_lower_hex_of_64() {
        assert!(is_sha256(&"a".repeat(64)));
        assert!(!is_sha256(&"A".repeat(64)));
        assert!(!is_sha256(&format!("{}\n", "a".repeat(63))));
        assert!(!is_sha256(&"a".repeat(65)));
    }
}
