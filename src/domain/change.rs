//! The change feed as clients see it: what kinds of change there are, and
//! which kind a note's entry is to a reader who last read at a given point.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{note::Note, timestamp};

/// What happened. Notes appear once each, at their last change, so a
/// note's kind depends on where its reader stands ([`ChangeKind::of_note`]);
/// deletions and attachments are events, each kept for the retention window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum ChangeKind {
    #[serde(rename = "note.created")]
    NoteCreated,
    #[serde(rename = "note.updated")]
    NoteUpdated,
    /// Moved to the trash, or deleted for good.
    #[serde(rename = "note.deleted")]
    NoteDeleted,
    /// Back from the trash.
    #[serde(rename = "note.restored")]
    NoteRestored,
    #[serde(rename = "attachment.created")]
    AttachmentCreated,
    #[serde(rename = "attachment.deleted")]
    AttachmentDeleted,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 6] = [
        Self::NoteCreated,
        Self::NoteUpdated,
        Self::NoteDeleted,
        Self::NoteRestored,
        Self::AttachmentCreated,
        Self::AttachmentDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoteCreated => "note.created",
            Self::NoteUpdated => "note.updated",
            Self::NoteDeleted => "note.deleted",
            Self::NoteRestored => "note.restored",
            Self::AttachmentCreated => "attachment.created",
            Self::AttachmentDeleted => "attachment.deleted",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The kind of a live note's entry to a reader who has seen every change
    /// up to `after`: created if it was created since, else restored if it
    /// came back from the trash since, else updated. A note created and then
    /// changed since is one entry, "created", with its latest content.
    pub fn of_note(after: i64, created_seq: i64, restored_seq: Option<i64>) -> Self {
        if created_seq > after {
            Self::NoteCreated
        } else if restored_seq.is_some_and(|r| r > after) {
            Self::NoteRestored
        } else {
            Self::NoteUpdated
        }
    }
}

/// One entry of the feed, at change number `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEntry {
    pub seq: i64,
    pub kind: ChangeKind,
    pub note_id: Uuid,
    pub attachment_id: Option<Uuid>,
    /// The note's version, for a note's entry.
    pub version: Option<i64>,
    pub at: DateTime<Utc>,
    /// The note as it is, when the reader asked for it (`include=note`).
    pub note: Option<Note>,
}

/// A change as the API answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChangeView {
    /// Continue after this change with `since=<cursor>`.
    pub cursor: String,
    #[serde(rename = "type")]
    pub kind: ChangeKind,
    pub note_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(with = "timestamp")]
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
}

/// Why a cursor cannot be continued from: the client must sync again from
/// a full listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Deletions after it have been pruned (older than the retention).
    Pruned,
    /// It is from another numbering: the deployment was restored from a
    /// backup, or it comes from another deployment.
    OtherEpoch,
}

impl Expired {
    pub fn detail(self) -> &'static str {
        match self {
            Self::Pruned => {
                "this cursor is older than the changes kept (NOTES_CHANGES_RETENTION_DAYS): list every note again, then follow the feed from the next_cursor of a read without since"
            }
            Self::OtherEpoch => {
                "this cursor is from another numbering of the feed (the deployment was restored from a backup, or it is another deployment's): list every note again, then follow the feed from the next_cursor of a read without since"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notes_kind_depends_on_where_its_reader_stands() {
        // Created at 5, trashed at 8, restored at 10.
        assert_eq!(ChangeKind::of_note(0, 5, Some(10)), ChangeKind::NoteCreated);
        assert_eq!(ChangeKind::of_note(4, 5, Some(10)), ChangeKind::NoteCreated);
        assert_eq!(
            ChangeKind::of_note(5, 5, Some(10)),
            ChangeKind::NoteRestored
        );
        assert_eq!(
            ChangeKind::of_note(9, 5, Some(10)),
            ChangeKind::NoteRestored
        );
        assert_eq!(
            ChangeKind::of_note(10, 5, Some(10)),
            ChangeKind::NoteUpdated
        );
        assert_eq!(ChangeKind::of_note(5, 5, None), ChangeKind::NoteUpdated);
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in ChangeKind::ALL {
            assert_eq!(ChangeKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(ChangeKind::parse("note.moved"), None);
    }
}
