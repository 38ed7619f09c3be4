//! Reading the change feed: cursors, pages and the answer clients sync
//! from. The SSE stream and webhooks read the feed through here too.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use futures::Stream;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::{ServiceError, ServiceResult};
use crate::{
    domain::change::{ChangeEntry, ChangeView, Expired},
    index::IndexStatus,
    store::{Changes, ChangesPage},
};

pub const DEFAULT_CHANGES: u32 = 100;
pub const MAX_CHANGES: u32 = 1000;
/// Text of the notes one page with `include=note` carries before it ends
/// early: bounds the answer however large the notes are.
pub const INCLUDED_BYTES: usize = 8 * 1024 * 1024;

/// Where a reader stands in the feed: after change `seq` of the numbering
/// `epoch`. Opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub epoch: String,
    pub seq: i64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("c:{}:{}", self.epoch, self.seq))
    }

    /// `None` for anything this API did not hand out.
    pub fn decode(text: &str) -> Option<Self> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
        let (epoch, seq) = raw.strip_prefix("c:")?.rsplit_once(':')?;
        let seq: i64 = seq.parse().ok()?;
        let epoch_ok = !epoch.is_empty()
            && epoch.len() <= 64
            && epoch.bytes().all(|b| b.is_ascii_alphanumeric());
        (epoch_ok && seq >= 0).then(|| Self {
            epoch: epoch.to_owned(),
            seq,
        })
    }
}

/// What a client asks of the feed.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChangesRequest<'a> {
    /// A cursor from an earlier answer; none: from the start of what is kept.
    pub since: Option<&'a str>,
    pub limit: Option<u32>,
    /// Each note's entry carries the note.
    pub include_note: bool,
}

impl ChangesRequest<'_> {
    /// The cursor, checked for its form only.
    pub fn cursor(&self) -> ServiceResult<Option<Cursor>> {
        match self.since.filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(text) => Cursor::decode(text)
                .map(Some)
                .ok_or_else(|| ServiceError::invalid("since", "is not a cursor this API returned")),
        }
    }

    pub fn page_size(&self) -> ServiceResult<u32> {
        let limit = self.limit.unwrap_or(DEFAULT_CHANGES);
        if !(1..=MAX_CHANGES).contains(&limit) {
            return Err(ServiceError::invalid(
                "limit",
                format!("must be 1 to {MAX_CHANGES}"),
            ));
        }
        Ok(limit)
    }
}

/// A page of the feed as the API answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChangesAnswer {
    /// Oldest first.
    pub changes: Vec<ChangeView>,
    /// Continue from here (`since=`), even when this page is empty.
    pub next_cursor: String,
    /// More changes are there right now: read again at once.
    pub has_more: bool,
}

/// One page of the feed after `since`. A cursor the feed cannot continue
/// from is [`ServiceError::ChangesExpired`].
pub async fn page(store: &dyn Changes, req: ChangesRequest<'_>) -> ServiceResult<ChangesAnswer> {
    let limit = req.page_size()?;
    let cursor = req.cursor()?;
    let after = cursor.as_ref().map_or(0, |c| c.seq);
    let budget = req.include_note.then_some(INCLUDED_BYTES);
    let page = store.changes(after, limit, budget).await?;
    if let Some(cursor) = &cursor {
        check(cursor, &page)?;
    }
    Ok(answer(page))
}

/// Whether the feed, as `page` read it, can continue from `cursor`.
pub fn check(cursor: &Cursor, page: &ChangesPage) -> ServiceResult<()> {
    if cursor.epoch != page.epoch || cursor.seq > page.head {
        return Err(ServiceError::ChangesExpired(Expired::OtherEpoch));
    }
    if cursor.seq < page.floor {
        return Err(ServiceError::ChangesExpired(Expired::Pruned));
    }
    Ok(())
}

pub fn answer(page: ChangesPage) -> ChangesAnswer {
    let epoch = page.epoch;
    let changes = page.entries.into_iter().map(|e| view(&epoch, e)).collect();
    ChangesAnswer {
        changes,
        next_cursor: Cursor {
            epoch: epoch.clone(),
            seq: page.through,
        }
        .encode(),
        has_more: page.through < page.head,
    }
}

pub fn view(epoch: &str, e: ChangeEntry) -> ChangeView {
    ChangeView {
        cursor: Cursor {
            epoch: epoch.to_owned(),
            seq: e.seq,
        }
        .encode(),
        kind: e.kind,
        note_id: e.note_id,
        attachment_id: e.attachment_id,
        version: e.version,
        at: e.at,
        note: e.note,
    }
}

/// What a follower of the feed hands on.
#[derive(Debug)]
pub enum Followed {
    Change(Box<ChangeView>),
    /// The feed can no longer continue from where the follower is: the
    /// last item.
    Expired(Expired),
    /// Reading the feed failed: the last item (the client reconnects).
    Failed(ServiceError),
}

/// How a follower waits for the feed to move.
pub struct Wake {
    /// This process's index status: it moves each time the index has read
    /// new changes, which on PostgreSQL it learns of by `LISTEN`.
    pub index: Option<watch::Receiver<IndexStatus>>,
    /// Looked at this often anyway, and when there is no index.
    pub poll: Duration,
    /// Ends the follow (the process is shutting down).
    pub stop: CancellationToken,
}

/// Follows the feed from `from` (none: from the start of what is kept),
/// forever: each change once, in order, waiting for the next when it has
/// caught up. Ends at `wake.stop`, or with an expired cursor or a failed
/// read as its last item.
pub fn follow(
    store: Arc<dyn Changes>,
    from: Option<Cursor>,
    include_note: bool,
    wake: Wake,
) -> impl Stream<Item = Followed> + Send {
    let state = Follower {
        store,
        after: from.as_ref().map_or(0, |c| c.seq),
        epoch: from.map(|c| c.epoch),
        include_note,
        queue: VecDeque::new(),
        wake,
        done: false,
    };
    futures::stream::unfold(state, Follower::next)
}

struct Follower {
    store: Arc<dyn Changes>,
    after: i64,
    epoch: Option<String>,
    include_note: bool,
    queue: VecDeque<ChangeView>,
    wake: Wake,
    done: bool,
}

/// Changes a follower reads at a time.
const FOLLOW_PAGE: u32 = 100;

impl Follower {
    async fn next(mut self) -> Option<(Followed, Self)> {
        loop {
            if let Some(change) = self.queue.pop_front() {
                return Some((Followed::Change(Box::new(change)), self));
            }
            if self.done || self.wake.stop.is_cancelled() {
                return None;
            }
            let budget = self.include_note.then_some(INCLUDED_BYTES);
            let page = match self.store.changes(self.after, FOLLOW_PAGE, budget).await {
                Ok(page) => page,
                Err(e) => {
                    self.done = true;
                    return Some((Followed::Failed(e.into()), self));
                }
            };
            let epoch = self.epoch.get_or_insert_with(|| page.epoch.clone()).clone();
            let cursor = Cursor {
                epoch,
                seq: self.after,
            };
            if let Err(ServiceError::ChangesExpired(why)) = check(&cursor, &page) {
                self.done = true;
                return Some((Followed::Expired(why), self));
            }
            let caught_up = page.through >= page.head;
            self.after = page.through;
            let epoch = page.epoch;
            self.queue
                .extend(page.entries.into_iter().map(|e| view(&epoch, e)));
            if self.queue.is_empty() && caught_up {
                self.wait().await;
            }
        }
    }

    /// Until the feed may have moved, the poll interval passed, or stop.
    async fn wait(&mut self) {
        let poll = tokio::time::sleep(self.wake.poll);
        let stop = self.wake.stop.clone();
        match &mut self.wake.index {
            Some(index) => {
                tokio::select! {
                    moved = index.changed() => if moved.is_err() {
                        // The index is gone (a dataset was swapped out): so
                        // is the data this follows.
                        self.done = true;
                    },
                    () = poll => {}
                    () = stop.cancelled() => {}
                }
            }
            None => {
                tokio::select! {
                    () = poll => {}
                    () = stop.cancelled() => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(head: i64, floor: i64) -> ChangesPage {
        ChangesPage {
            entries: Vec::new(),
            through: head,
            head,
            epoch: "e1".into(),
            floor,
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_what_the_api_did_not_make() {
        let c = Cursor {
            epoch: "ab12".into(),
            seq: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "!!",
            &URL_SAFE_NO_PAD.encode("n:5"),
            &URL_SAFE_NO_PAD.encode("c::5"),
            &URL_SAFE_NO_PAD.encode("c:ab:-1"),
            &URL_SAFE_NO_PAD.encode("c:a b:1"),
            &URL_SAFE_NO_PAD.encode("c:ab:1x"),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_cursor_continues_only_within_its_epoch_and_the_kept_window() {
        let at = |epoch: &str, seq| Cursor {
            epoch: epoch.into(),
            seq,
        };
        assert!(check(&at("e1", 5), &page(9, 0)).is_ok());
        assert!(check(&at("e1", 5), &page(9, 5)).is_ok());
        let expired = |r: ServiceResult<()>| match r {
            Err(ServiceError::ChangesExpired(why)) => Some(why),
            _ => None,
        };
        assert_eq!(
            expired(check(&at("e1", 4), &page(9, 5))),
            Some(Expired::Pruned)
        );
        assert_eq!(
            expired(check(&at("e2", 5), &page(9, 0))),
            Some(Expired::OtherEpoch)
        );
        assert_eq!(
            expired(check(&at("e1", 10), &page(9, 0))),
            Some(Expired::OtherEpoch)
        );
    }
}
