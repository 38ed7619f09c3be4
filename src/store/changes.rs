//! The change feed as clients read it ([`Changes`]), for both SQL backends.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    Changes, ChangesPage, StoreError, merge_pages,
    rows::{ChangedNoteRow, EventRow, NOTE_COLUMNS, NoteRow, Time},
    sql::{
        ATTACHMENT_TEXT, Args, Backend, SqlStore, execute, fetch_all, fetch_one, list_query, query,
    },
};
use crate::domain::{change::ChangeEntry, note::Note};

/// Notes read at a time to fill a page's `include=note`: what the page may
/// hold beyond its byte budget.
const NOTE_CHUNK: usize = 16;

#[async_trait]
impl<B: Backend> Changes for SqlStore<B> {
    async fn changes(
        &self,
        after: i64,
        limit: u32,
        notes: Option<usize>,
    ) -> Result<ChangesPage, StoreError> {
        // One snapshot, as the index's reads: every change up to the head
        // read here is visible in it, so the page is complete up to it.
        let mut tx = B::begin_snapshot(self, false).await?;
        let (head, epoch, floor): (i64, String, i64) = fetch_one(
            &mut *tx,
            query::<B>("SELECT head, epoch, floor FROM search_feed WHERE id = 1"),
        )
        .await?;
        let page = |sql: String| query::<B>(&sql).arg(after).arg(head).arg(i64::from(limit));
        let rows: Vec<ChangedNoteRow> = fetch_all(
            &mut *tx,
            page(
                "SELECT change_seq, id, version, updated_at, created_seq, restored_seq, restored_at
                 FROM notes WHERE change_seq > $1 AND change_seq <= $2 AND deleted_at IS NULL
                 ORDER BY change_seq LIMIT $3"
                    .to_owned(),
            ),
        )
        .await?;
        let live = rows.into_iter().map(|r| r.into_entry(after)).collect();
        let rows: Vec<EventRow> = fetch_all(
            &mut *tx,
            page(format!(
                "SELECT change_seq, kind, note_id, attachment_id, at FROM feed_events
                 WHERE change_seq > $1 AND change_seq <= $2 AND kind <> '{ATTACHMENT_TEXT}'
                 ORDER BY change_seq LIMIT $3"
            )),
        )
        .await?;
        let events = rows.into_iter().filter_map(EventRow::into_entry).collect();
        let (merged, mut through) = merge_pages(vec![live, events], head, limit as usize);
        let mut entries: Vec<ChangeEntry> = merged.into_iter().map(|(_, e)| e).collect();
        if entries.len() > limit as usize {
            entries.truncate(limit as usize);
            through = entries.last().map_or(through, |e| e.seq);
        }
        if let Some(budget) = notes
            && let Some(cut) = include_notes::<B>(&mut tx, &mut entries, budget).await?
        {
            through = cut;
        }
        tx.commit().await.map_err(B::map_err)?;
        Ok(ChangesPage {
            entries,
            through,
            head,
            epoch,
            floor,
        })
    }

    async fn prune_changes(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let mut tx = B::begin_write(self).await?;
        // A prefix of the log, so that the floor says exactly what is gone.
        let (last,): (Option<i64>,) = fetch_one(
            &mut *tx,
            query::<B>(
                "SELECT max(change_seq) FROM (SELECT change_seq FROM feed_events WHERE at < $1
                                              ORDER BY change_seq LIMIT $2) old",
            )
            .arg(Time(before))
            .arg(i64::from(limit)),
        )
        .await?;
        let Some(last) = last else { return Ok(0) };
        let pruned = execute(
            &mut *tx,
            query::<B>("DELETE FROM feed_events WHERE change_seq <= $1").arg(last),
        )
        .await?;
        execute(
            &mut *tx,
            query::<B>("UPDATE search_feed SET floor = $1 WHERE id = 1 AND floor < $1").arg(last),
        )
        .await?;
        tx.commit().await.map_err(B::map_err)?;
        Ok(pruned)
    }
}

/// Puts each note entry's note in it, read in chunks from the page's
/// snapshot, until their text passes `budget`: the page then ends before
/// the entry that passed it (it keeps at least one). Returns where it ended,
/// if it did.
async fn include_notes<B: Backend>(
    tx: &mut sqlx::Transaction<'static, B>,
    entries: &mut Vec<ChangeEntry>,
    budget: usize,
) -> Result<Option<i64>, StoreError> {
    let mut used = 0;
    let mut at = 0;
    while at < entries.len() {
        let ids: Vec<Uuid> = entries[at..]
            .iter()
            .filter(|e| e.version.is_some())
            .take(NOTE_CHUNK)
            .map(|e| e.note_id)
            .collect();
        if ids.is_empty() {
            break;
        }
        let rows: Vec<NoteRow> = fetch_all(
            &mut **tx,
            list_query::<B>(&format!(
                "SELECT {NOTE_COLUMNS} FROM notes WHERE id {}",
                B::IN_LIST
            ))
            .bind(B::id_list(&ids)),
        )
        .await?;
        let mut found: HashMap<Uuid, Note> = rows
            .into_iter()
            .map(|r| {
                let note = r.into_note();
                (note.id, note)
            })
            .collect();
        let last = ids.last().copied();
        while at < entries.len() {
            let entry = &mut entries[at];
            if entry.version.is_some() {
                let Some(note) = found.remove(&entry.note_id) else {
                    return Err(StoreError::Internal(
                        "a note of the feed's snapshot is missing from it".into(),
                    ));
                };
                used += note.title.len() + note.body.len();
                if used > budget && at > 0 {
                    entries.truncate(at);
                    return Ok(entries.last().map(|e| e.seq));
                }
                entry.note = Some(note);
                if Some(entry.note_id) == last {
                    at += 1;
                    break;
                }
            }
            at += 1;
        }
    }
    Ok(None)
}
