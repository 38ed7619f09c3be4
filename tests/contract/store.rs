//! The `Store` contract: what the trait's doc comments promise, one
//! behaviour per test, on every backend.

use std::{collections::HashSet, sync::Arc, time::Duration};

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

// Every path into the service that this file names.
use notes_api::{
    domain::{
        attachment::{Attachment, StoredAttachment, storage_key},
        change::ChangeKind,
        ingest::IngestCounts,
        keys::{ApiKey, Scope, generate_key},
        note::{MAX_NOTE_VERSION, Note, NoteInput},
        timestamp,
    },
    store::{
        Change, ChangePage, DynStore, ExportKey, ImportedNote, ListQuery, NewKey, Record,
        StoreError, Upserted,
    },
};

contract_tests! {
    store;
    backend_answers_a_ping: sqlite, postgres;
    a_migrated_store_has_no_pending_migration: sqlite, postgres;
    created_note_reads_back: sqlite, postgres;
    get_of_an_unknown_note_is_none: sqlite, postgres;
    update_replaces_the_content_and_bumps_the_version: sqlite, postgres;
    update_at_a_stale_version_is_a_mismatch_and_changes_nothing: sqlite, postgres;
    update_of_an_unknown_note_is_not_found: sqlite, postgres;
    a_note_at_the_highest_version_cannot_change: sqlite, postgres;
    delete_removes_the_note_and_returns_its_attachments_keys: sqlite, postgres;
    delete_of_an_unknown_note_is_none: sqlite, postgres;
    external_id_names_one_note_at_most: sqlite, postgres;
    list_is_newest_first_and_pages_with_a_cursor: sqlite, postgres;
    list_filters_by_tag_and_pages: sqlite, postgres;
    ingest_creates_updates_and_leaves_alone_by_external_id: sqlite, postgres;
    import_note_keeps_the_id_and_times_and_upserts_by_id_then_external_id: sqlite, postgres;
    import_note_dry_run_writes_nothing: sqlite, postgres;
    concurrent_imports_of_one_note_create_it_once: sqlite, postgres;
    ingest_of_a_large_batch_upserts_every_note: sqlite, postgres;
    ingest_that_fails_writes_nothing: sqlite, postgres;
    concurrent_ingests_of_the_same_ids_in_opposite_orders_both_land: sqlite, postgres;
    count_notes_counts_every_note: sqlite, postgres;
    attachments_are_created_listed_read_and_deleted: sqlite, postgres;
    attachment_of_a_missing_note_is_not_found: sqlite, postgres;
    attachment_text_joins_its_notes_search_document: sqlite, postgres;
    attachments_present_names_those_that_exist: sqlite, postgres;
    attachments_without_text_are_the_non_empty_ones_of_those_types: sqlite, postgres;
    keys_are_created_listed_found_and_revoked: sqlite, postgres;
    feed_numbers_every_note_write_in_order: sqlite, postgres;
    feed_reports_deletions_only_when_asked: sqlite, postgres;
    feed_pages_are_complete_up_to_their_through: sqlite, postgres;
    feed_changes_stop_at_upto: sqlite, postgres;
    renew_feed_starts_a_new_generation: sqlite, postgres;
    watch_feed_announces_a_change_where_the_backend_can: sqlite, postgres;
    is_empty_means_no_notes_attachments_or_keys: sqlite, postgres;
    export_sends_keys_then_notes_then_attachments: sqlite, postgres;
    export_keys_page_live_notes_by_creation_then_id: sqlite, postgres;
    an_update_keeps_the_state_it_replaced_as_a_revision: sqlite, postgres;
    an_ingest_update_keeps_a_revision_and_an_unchanged_one_none: sqlite, postgres;
    a_refused_update_keeps_no_revision: sqlite, postgres;
    prune_revisions_keeps_the_newest_and_drops_the_old: sqlite, postgres;
    a_deleted_note_takes_its_revisions: sqlite, postgres;
    a_trashed_note_leaves_reads_and_the_feed_and_comes_back: sqlite, postgres;
    the_trash_lists_newest_first_and_purges_oldest_first: sqlite, postgres;
    an_ingest_brings_a_trashed_note_back: sqlite, postgres;
    export_and_import_carry_the_trash: sqlite, postgres;
    import_restores_an_export_as_it_was: sqlite, postgres;
    import_rolls_back_when_the_producer_fails: sqlite, postgres;
    import_of_an_attachment_without_its_note_fails: sqlite, postgres;
    import_of_a_duplicate_names_what_is_duplicated: sqlite, postgres;
    changes_list_each_note_once_as_its_reader_sees_it: sqlite, postgres;
    changes_keep_events_until_pruned_and_raise_the_floor: sqlite, postgres;
    changes_carry_notes_within_a_budget: sqlite, postgres;
    an_import_starts_a_new_epoch_of_the_feed: sqlite, postgres;
}

pub(crate) fn input(title: &str) -> NoteInput {
    NoteInput {
        title: title.to_owned(),
        body: format!("body of {title}"),
        tags: vec![],
        external_id: None,
        metadata: Map::new(),
        changed_by: None,
    }
}

fn tagged(title: &str, tags: &[&str]) -> NoteInput {
    NoteInput {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..input(title)
    }
}

fn external(title: &str, ext: &str) -> NoteInput {
    NoteInput {
        external_id: Some(ext.to_owned()),
        ..input(title)
    }
}

pub(crate) async fn create(s: &DynStore, note: NoteInput) -> Note {
    s.create_note(note).await.expect("create_note")
}

async fn get(s: &DynStore, id: Uuid) -> Note {
    s.get_note(id)
        .await
        .expect("get_note")
        .expect("the note exists")
}

fn attachment(note_id: Uuid, content_type: &str, size: u64, text: &str) -> StoredAttachment {
    let id = Uuid::now_v7();
    StoredAttachment {
        attachment: Attachment {
            id,
            note_id,
            filename: format!("{id}.bin"),
            content_type: content_type.to_owned(),
            size,
            sha256: "ab".repeat(32),
            created_at: timestamp::now(),
        },
        storage_key: storage_key(note_id, id),
        search_text: text.to_owned(),
    }
}

async fn attach(s: &DynStore, a: &StoredAttachment) {
    s.create_attachment(a.clone())
        .await
        .expect("create_attachment");
}

fn new_key(name: &str, scopes: &[Scope]) -> NewKey {
    let generated = generate_key();
    NewKey {
        key: ApiKey {
            id: Uuid::now_v7(),
            name: name.to_owned(),
            scopes: scopes.to_vec(),
            prefix: generated.prefix,
            created_at: timestamp::now(),
        },
        hash: generated.hash,
    }
}

async fn page(
    s: &DynStore,
    tag: Option<&str>,
    limit: u32,
    after: Option<i64>,
) -> (Vec<Uuid>, Option<i64>) {
    let query = ListQuery {
        tag: tag.map(str::to_owned),
        limit,
        after,
    };
    let page = s.list_notes(&query).await.expect("list_notes");
    (page.items.iter().map(|n| n.id).collect(), page.next)
}

/// (change number, note id, whether it is a deletion), in feed order.
fn changes(page: &ChangePage) -> Vec<(i64, Uuid, bool)> {
    page.changes
        .iter()
        .map(|(seq, change)| match change {
            Change::Upsert(doc) => (*seq, doc.id, false),
            Change::Delete(id) => (*seq, *id, true),
        })
        .collect()
}

pub(crate) async fn export(s: &DynStore) -> Vec<Record> {
    let (tx, mut rx) = mpsc::channel(16);
    let store = s.clone();
    let producer = tokio::spawn(async move { store.export(tx).await });
    let mut records = Vec::new();
    while let Some(record) = rx.recv().await {
        records.push(record);
    }
    producer.await.unwrap().expect("export");
    records
}

/// A backup of a large database reads for longer than the statement
/// timeout that bounds requests (issue #10): the export lifts it for its own
/// transaction, and only there. 24 MiB of notes is far more than the socket
/// buffers hold, so with a slow reader the export's query is still running
/// long after the 200 ms timeout of this pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_export_outlasts_the_statement_timeout() {
    let Some(fresh) = crate::backends::postgres::store_with(notes_api::store::PoolSettings {
        statement_timeout: std::time::Duration::from_millis(200),
        ..crate::backends::settings()
    })
    .await
    else {
        return;
    };
    let s = fresh.it.clone();
    let body = "x".repeat(8 * 1024);
    // In batches small enough that each insert stays well within the 200 ms
    // even on a loaded machine: the timeout is for the export, not these.
    for batch in 0..30 {
        let notes = (0..100)
            .map(|i| NoteInput {
                body: body.clone(),
                ..input(&format!("n{batch}-{i}"))
            })
            .collect();
        s.ingest(notes).await.expect("ingest");
    }
    let (tx, mut rx) = mpsc::channel(16);
    let store = s.clone();
    let producer = tokio::spawn(async move { store.export(tx).await });
    let started = std::time::Instant::now();
    let mut notes = 0;
    while let Some(record) = rx.recv().await {
        if matches!(record, Record::Note(_)) {
            notes += 1;
            tokio::time::sleep(std::time::Duration::from_micros(300)).await;
        }
    }
    producer
        .await
        .unwrap()
        .expect("the export is not cut short");
    assert_eq!(notes, 3000);
    assert!(
        started.elapsed() > std::time::Duration::from_millis(600),
        "the reader was slower than the timeout"
    );
    fresh.it.close().await;
}

pub(crate) async fn import(
    s: &DynStore,
    records: Vec<Result<Record, StoreError>>,
) -> Result<u64, StoreError> {
    let (tx, rx) = mpsc::channel(16);
    let feeder = tokio::spawn(async move {
        for record in records {
            if tx.send(record).await.is_err() {
                break;
            }
        }
    });
    let written = s.import(rx).await;
    feeder.await.unwrap();
    written
}

async fn backend_answers_a_ping(s: DynStore) {
    s.ping().await.expect("ping");
    assert!(["sqlite", "postgres"].contains(&s.backend()));
}

async fn a_migrated_store_has_no_pending_migration(s: DynStore) {
    assert_eq!(
        s.schema_versions().await.expect("versions"),
        notes_api::store::SchemaVersions::default()
    );
    notes_api::store::require_current(s.as_ref())
        .await
        .expect("current");
}

async fn created_note_reads_back(s: DynStore) {
    let mut metadata = Map::new();
    metadata.insert("source".into(), json!("import"));
    metadata.insert("n".into(), json!(3));
    metadata.insert("nested".into(), json!({"a": [1, "b", null, true]}));
    let note_in = NoteInput {
        title: "Title ünïcode".into(),
        body: "line one\nline two".into(),
        tags: vec!["work".into(), "ideas".into()],
        external_id: Some("ext-1".into()),
        metadata,
        changed_by: None,
    };
    let note = create(&s, note_in.clone()).await;
    assert!(note_in.same_content(&note));
    assert_eq!(note.version, 1);
    assert_eq!(note.created_at, note.updated_at);
    assert_eq!(get(&s, note.id).await, note);
}

async fn get_of_an_unknown_note_is_none(s: DynStore) {
    create(&s, input("a")).await;
    assert_eq!(s.get_note(Uuid::now_v7()).await.unwrap(), None);
}

async fn update_replaces_the_content_and_bumps_the_version(s: DynStore) {
    let note = create(&s, tagged("before", &["a"])).await;
    let mut change = tagged("after", &["b", "c"]);
    change.external_id = Some("now-known".into());
    change.metadata.insert("k".into(), json!("v"));
    let updated = s.update_note(note.id, change.clone(), 1).await.unwrap();
    assert_eq!(updated.id, note.id);
    assert!(change.same_content(&updated));
    assert_eq!(updated.version, 2);
    assert_eq!(updated.created_at, note.created_at);
    assert!(updated.updated_at >= note.updated_at);
    assert_eq!(get(&s, note.id).await, updated);
    let again = s.update_note(note.id, input("third"), 2).await.unwrap();
    assert_eq!(again.version, 3);
}

async fn update_at_a_stale_version_is_a_mismatch_and_changes_nothing(s: DynStore) {
    let note = create(&s, input("v1")).await;
    let v2 = s.update_note(note.id, input("v2"), 1).await.unwrap();
    let err = s
        .update_note(note.id, input("lost update"), 1)
        .await
        .expect_err("stale version");
    assert!(
        matches!(err, StoreError::VersionMismatch { current: 2 }),
        "{err:?}"
    );
    assert_eq!(get(&s, note.id).await, v2);
}

/// Issue #21, defect 5: a restored note at version 2^63 − 1 made every
/// PATCH a 500 (`version + 1` overflowed). At the highest version a note
/// may have, an update and an ingest are a clear conflict, and the note
/// stays as it was; one below it still changes, once.
async fn a_note_at_the_highest_version_cannot_change(s: DynStore) {
    let at = |version: i64, external_id: &str| Note {
        id: Uuid::now_v7(),
        title: "old".into(),
        body: String::new(),
        tags: vec![],
        external_id: Some(external_id.into()),
        metadata: Map::new(),
        created_at: timestamp::now(),
        updated_at: timestamp::now(),
        version,
    };
    let top = at(MAX_NOTE_VERSION, "top");
    let below = at(MAX_NOTE_VERSION - 1, "below");
    import(
        &s,
        vec![
            Ok(Record::Note(top.clone())),
            Ok(Record::Note(below.clone())),
        ],
    )
    .await
    .expect("import");

    let err = s
        .update_note(top.id, input("new"), MAX_NOTE_VERSION)
        .await
        .expect_err("no version after the highest");
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains(&top.id.to_string()) && m.contains("highest")),
        "{err:?}"
    );
    let mut change = input("new");
    change.external_id = Some("top".into());
    let err = s.ingest(vec![change]).await.expect_err("ingest too");
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("highest")),
        "{err:?}"
    );
    assert_eq!(get(&s, top.id).await, top, "unchanged");

    let last = s
        .update_note(below.id, input("new"), MAX_NOTE_VERSION - 1)
        .await
        .expect("the last change");
    assert_eq!(last.version, MAX_NOTE_VERSION);
    let err = s
        .update_note(below.id, input("newer"), MAX_NOTE_VERSION)
        .await
        .expect_err("and no more");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

async fn update_of_an_unknown_note_is_not_found(s: DynStore) {
    let err = s
        .update_note(Uuid::now_v7(), input("x"), 1)
        .await
        .expect_err("no such note");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

async fn delete_removes_the_note_and_returns_its_attachments_keys(s: DynStore) {
    let note = create(&s, input("with files")).await;
    let other = create(&s, input("other")).await;
    let a = attachment(note.id, "text/plain", 3, "");
    let b = attachment(note.id, "image/png", 5, "");
    let kept = attachment(other.id, "text/plain", 3, "");
    for x in [&a, &b, &kept] {
        attach(&s, x).await;
    }
    let mut keys = s.delete_note(note.id).await.unwrap().expect("it existed");
    keys.sort();
    let mut want = vec![a.storage_key.clone(), b.storage_key.clone()];
    want.sort();
    assert_eq!(keys, want);
    assert_eq!(s.get_note(note.id).await.unwrap(), None);
    assert!(
        s.list_attachments(note.id, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.get_attachment(a.attachment.id).await.unwrap().is_none());
    assert!(s.get_attachment(b.attachment.id).await.unwrap().is_none());
    // The other note and its attachment are untouched.
    assert_eq!(get(&s, other.id).await, other);
    assert!(
        s.get_attachment(kept.attachment.id)
            .await
            .unwrap()
            .is_some()
    );
    // A note without attachments returns no keys.
    assert_eq!(
        s.delete_note(other.id).await.unwrap(),
        Some(vec![kept.storage_key])
    );
    let bare = create(&s, input("bare")).await;
    assert_eq!(s.delete_note(bare.id).await.unwrap(), Some(vec![]));
}

async fn delete_of_an_unknown_note_is_none(s: DynStore) {
    let note = create(&s, input("a")).await;
    assert_eq!(s.delete_note(Uuid::now_v7()).await.unwrap(), None);
    s.delete_note(note.id).await.unwrap().expect("it existed");
    assert_eq!(s.delete_note(note.id).await.unwrap(), None, "already gone");
}

async fn external_id_names_one_note_at_most(s: DynStore) {
    let first = create(&s, external("first", "dup")).await;
    let err = s
        .create_note(external("second", "dup"))
        .await
        .expect_err("taken external_id");
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("external_id")),
        "{err:?}"
    );
    assert_eq!(s.count_notes().await.unwrap(), 1);
    let other = create(&s, external("other", "free")).await;
    let err = s
        .update_note(other.id, external("other", "dup"), 1)
        .await
        .expect_err("taken external_id");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(get(&s, other.id).await, other);
    assert_eq!(get(&s, first.id).await, first);
    // Notes without one never conflict.
    create(&s, input("no ext")).await;
    create(&s, input("no ext")).await;
}

async fn list_is_newest_first_and_pages_with_a_cursor(s: DynStore) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(create(&s, input(&format!("n{i}"))).await.id);
    }
    ids.reverse();
    let (first, next) = page(&s, None, 2, None).await;
    assert_eq!(first, ids[0..2]);
    let (second, next) = page(&s, None, 2, Some(next.expect("more"))).await;
    assert_eq!(second, ids[2..4]);
    let (third, next) = page(&s, None, 2, Some(next.expect("more"))).await;
    assert_eq!(third, ids[4..5]);
    assert_eq!(next, None);
    assert_eq!(page(&s, None, 5, None).await, (ids.clone(), None));
    // An update does not move a note.
    let oldest = ids[4];
    s.update_note(oldest, input("edited"), 1).await.unwrap();
    assert_eq!(page(&s, None, 5, None).await.0, ids);
    // Items come whole.
    let listed = s
        .list_notes(&ListQuery {
            tag: None,
            limit: 1,
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(listed.items, vec![get(&s, ids[0]).await]);
}

async fn list_filters_by_tag_and_pages(s: DynStore) {
    let mut red = Vec::new();
    for i in 0..5 {
        let tags: &[&str] = if i % 2 == 0 { &["red", "x"] } else { &["red"] };
        red.push(create(&s, tagged(&format!("r{i}"), tags)).await.id);
        create(&s, tagged(&format!("b{i}"), &["blue"])).await;
    }
    create(&s, input("untagged")).await;
    red.reverse();
    let (first, next) = page(&s, Some("red"), 2, None).await;
    assert_eq!(first, red[0..2]);
    let (second, next) = page(&s, Some("red"), 2, Some(next.expect("more"))).await;
    assert_eq!(second, red[2..4]);
    let (third, next) = page(&s, Some("red"), 2, Some(next.expect("more"))).await;
    assert_eq!(third, red[4..5]);
    assert_eq!(next, None);
    let x: Vec<Uuid> = vec![red[0], red[2], red[4]];
    assert_eq!(page(&s, Some("x"), 10, None).await, (x, None));
    assert_eq!(page(&s, Some("green"), 10, None).await, (vec![], None));
    // A tag removed by an update no longer lists the note.
    s.update_note(red[0], input("no tags now"), 1)
        .await
        .unwrap();
    assert_eq!(page(&s, Some("red"), 10, None).await.0, red[1..]);
}

async fn ingest_creates_updates_and_leaves_alone_by_external_id(s: DynStore) {
    let first = s
        .ingest(vec![
            external("a", "ext-a"),
            external("b", "ext-b"),
            input("no ext"),
        ])
        .await
        .unwrap();
    assert_eq!(
        first,
        IngestCounts {
            created: 3,
            updated: 0,
            unchanged: 0
        }
    );
    let by_ext = |notes: &[Note], ext: &str| {
        notes
            .iter()
            .find(|n| n.external_id.as_deref() == Some(ext))
            .cloned()
            .expect("ingested")
    };
    let all = |s: DynStore| async move {
        let q = ListQuery {
            tag: None,
            limit: 100,
            after: None,
        };
        s.list_notes(&q).await.unwrap().items
    };
    let before = all(s.clone()).await;
    let a = by_ext(&before, "ext-a");
    let b = by_ext(&before, "ext-b");
    assert_eq!(a.version, 1);

    let second = s
        .ingest(vec![
            external("a", "ext-a"),
            NoteInput {
                body: "b changed".into(),
                ..external("b", "ext-b")
            },
            external("c", "ext-c"),
            input("no ext"),
        ])
        .await
        .unwrap();
    assert_eq!(
        second,
        IngestCounts {
            created: 2,
            updated: 1,
            unchanged: 1
        }
    );
    assert_eq!(get(&s, a.id).await, a, "unchanged: left alone");
    let b2 = get(&s, b.id).await;
    assert_eq!(b2.body, "b changed");
    assert_eq!(b2.version, 2);
    assert_eq!(b2.created_at, b.created_at);
    assert_eq!(s.count_notes().await.unwrap(), 5);
    let after = all(s.clone()).await;
    assert_eq!(by_ext(&after, "ext-c").version, 1);
}

/// Two batches over the same external ids, one in reverse, at once and
/// again: on PostgreSQL they used to lock rows (and insert new ids) in
/// opposite orders and deadlock. Both must land, every time.
async fn concurrent_ingests_of_the_same_ids_in_opposite_orders_both_land(s: DynStore) {
    let batch = |round: usize, reverse: bool| -> Vec<NoteInput> {
        let mut notes: Vec<NoteInput> = (0..1_200)
            .map(|i| NoteInput {
                external_id: Some(format!("shared-{i}")),
                ..tagged(&format!("round {round} note {i} {reverse}"), &["shared"])
            })
            .collect();
        if reverse {
            notes.reverse();
        }
        notes
    };
    for round in 0..6 {
        let (a, b) = tokio::join!(s.ingest(batch(round, false)), s.ingest(batch(round, true)));
        a.unwrap_or_else(|e| panic!("round {round}: {e}"));
        b.unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    assert_eq!(s.count_notes().await.unwrap(), 1_200);
}

fn imported(id: Option<Uuid>, note: NoteInput, created: Option<&str>) -> ImportedNote {
    let created = created.map(|t| timestamp::parse(t).unwrap());
    ImportedNote {
        id,
        input: note,
        created_at: created,
        updated_at: created.map(|t| t + chrono::Duration::hours(1)),
    }
}

async fn import_note_keeps_the_id_and_times_and_upserts_by_id_then_external_id(s: DynStore) {
    let id = Uuid::now_v7();
    let head = s.feed_head().await.unwrap();
    let (note, outcome) = s
        .import_note(
            imported(
                Some(id),
                input("exported"),
                Some("2020-01-02T03:04:05.000006Z"),
            ),
            false,
        )
        .await
        .unwrap();
    assert_eq!(outcome, Upserted::Created);
    assert_eq!(note.id, id);
    assert_eq!(note.version, 1);
    assert_eq!(
        timestamp::format(&note.created_at),
        "2020-01-02T03:04:05.000006Z"
    );
    assert_eq!(
        timestamp::format(&note.updated_at),
        "2020-01-02T04:04:05.000006Z"
    );
    assert_eq!(get(&s, id).await, note);
    // In the feed, as every write is.
    let page = s.feed_changes(head.seq, None, 100, true).await.unwrap();
    assert_eq!(page.changes.len(), 1);

    // The same again: unchanged, untouched.
    let (same, outcome) = s
        .import_note(imported(Some(id), input("exported"), None), false)
        .await
        .unwrap();
    assert_eq!(outcome, Upserted::Unchanged);
    assert_eq!(same, note);
    // Changed: updated by its id, a new version.
    let changed = NoteInput {
        body: "new body".into(),
        ..input("exported")
    };
    let (after, outcome) = s
        .import_note(imported(Some(id), changed, None), false)
        .await
        .unwrap();
    assert_eq!(outcome, Upserted::Updated);
    assert_eq!((after.id, after.version), (id, 2));
    assert_eq!(after.body, "new body");
    assert_eq!(after.created_at, note.created_at);

    // Without an id, by external_id.
    let (a, outcome) = s
        .import_note(imported(None, external("a", "vault:a.md"), None), false)
        .await
        .unwrap();
    assert_eq!(outcome, Upserted::Created);
    let (b, outcome) = s
        .import_note(imported(None, external("a2", "vault:a.md"), None), false)
        .await
        .unwrap();
    assert_eq!(outcome, Upserted::Updated);
    assert_eq!((b.id, b.title.as_str()), (a.id, "a2"));
    // A trashed note is brought back by an import naming it.
    assert!(s.trash_note(a.id, "test").await.unwrap());
    let (c, outcome) = s
        .import_note(imported(None, external("a2", "vault:a.md"), None), false)
        .await
        .unwrap();
    assert_eq!(outcome, Upserted::Updated);
    assert_eq!(c.id, a.id);
    assert_eq!(get(&s, a.id).await.title, "a2");
}

async fn concurrent_imports_of_one_note_create_it_once(s: DynStore) {
    // Rounds of writers racing on one new external id each: the window
    // between looking a note up and inserting it is small.
    for round in 0..10 {
        let ext = format!("vault:same-{round}.md");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (s, ext) = (s.clone(), ext.clone());
                tokio::spawn(async move {
                    s.import_note(imported(None, external("same", &ext), None), false)
                        .await
                })
            })
            .collect();
        let mut created = 0;
        for t in tasks {
            let (_, outcome) = t.await.unwrap().expect("no conflict");
            if outcome == Upserted::Created {
                created += 1;
            } else {
                assert_eq!(outcome, Upserted::Unchanged);
            }
        }
        assert_eq!(created, 1, "round {round}");
    }
    assert_eq!(s.count_notes().await.unwrap(), 10);
}

async fn import_note_dry_run_writes_nothing(s: DynStore) {
    let (note, outcome) = s
        .import_note(imported(None, external("dry", "vault:dry.md"), None), true)
        .await
        .unwrap();
    assert_eq!(outcome, Upserted::Created);
    assert!(s.get_note(note.id).await.unwrap().is_none());
    assert_eq!(s.count_notes().await.unwrap(), 0);
    let (kept, _) = s
        .import_note(imported(None, external("dry", "vault:dry.md"), None), false)
        .await
        .unwrap();
    let changed = external("dry, changed", "vault:dry.md");
    let (would, outcome) = s
        .import_note(imported(None, changed, None), true)
        .await
        .unwrap();
    assert_eq!(outcome, Upserted::Updated);
    assert_eq!(would.title, "dry, changed");
    assert_eq!(get(&s, kept.id).await, kept);
}

async fn ingest_of_a_large_batch_upserts_every_note(s: DynStore) {
    // More than one statement's worth of rows (`BATCH_ROWS`).
    let n: u64 = 1_234;
    let batch: Vec<NoteInput> = (0..n)
        .map(|i| tagged(&format!("note {i}"), &["bulk"]))
        .map(|note| NoteInput {
            external_id: Some(format!("bulk-{}", note.title)),
            ..note
        })
        .collect();
    let counts = s.ingest(batch.clone()).await.unwrap();
    assert_eq!(
        counts,
        IngestCounts {
            created: n,
            updated: 0,
            unchanged: 0
        }
    );
    assert_eq!(s.count_notes().await.unwrap(), n);
    let mut again = batch;
    for note in again.iter_mut().step_by(2) {
        note.body.push_str(" (edited)");
    }
    let counts = s.ingest(again).await.unwrap();
    assert_eq!(
        counts,
        IngestCounts {
            created: 0,
            updated: n.div_ceil(2),
            unchanged: n / 2
        }
    );
    assert_eq!(s.count_notes().await.unwrap(), n);
}

async fn ingest_that_fails_writes_nothing(s: DynStore) {
    let existing = create(&s, external("kept", "ext-kept")).await;
    let head = s.feed_head().await.unwrap();
    // The batch names one new external id twice: its second insert fails.
    let result = s
        .ingest(vec![
            NoteInput {
                body: "would change".into(),
                ..external("kept", "ext-kept")
            },
            external("new", "ext-new"),
            input("plain"),
            external("twice", "ext-twice"),
            external("twice again", "ext-twice"),
        ])
        .await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(s.count_notes().await.unwrap(), 1);
    assert_eq!(get(&s, existing.id).await, existing);
    let page = s.feed_changes(head.seq, None, 100, true).await.unwrap();
    assert!(changes(&page).is_empty(), "no change reached the feed");
}

async fn count_notes_counts_every_note(s: DynStore) {
    assert_eq!(s.count_notes().await.unwrap(), 0);
    let a = create(&s, input("a")).await;
    create(&s, input("b")).await;
    s.ingest(vec![input("c"), input("d")]).await.unwrap();
    assert_eq!(s.count_notes().await.unwrap(), 4);
    s.delete_note(a.id).await.unwrap();
    assert_eq!(s.count_notes().await.unwrap(), 3);
}

async fn attachments_are_created_listed_read_and_deleted(s: DynStore) {
    let note = create(&s, input("files")).await;
    let other = create(&s, input("other")).await;
    let a = attachment(note.id, "text/plain", 11, "");
    let b = attachment(note.id, "application/pdf", 2048, "");
    let c = attachment(other.id, "image/png", 7, "");
    for x in [&b, &a, &c] {
        attach(&s, x).await;
    }
    // Listed by id: creation order, as ids are time-ordered.
    assert_eq!(
        s.list_attachments(note.id, None, 100).await.unwrap(),
        vec![a.attachment.clone(), b.attachment.clone()]
    );
    assert!(
        s.list_attachments(Uuid::now_v7(), None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let stored = s
        .get_attachment(a.attachment.id)
        .await
        .unwrap()
        .expect("exists");
    assert_eq!(stored.attachment, a.attachment);
    assert_eq!(stored.storage_key, a.storage_key);
    assert!(s.get_attachment(Uuid::now_v7()).await.unwrap().is_none());

    assert_eq!(
        s.delete_attachment(a.attachment.id).await.unwrap(),
        Some(a.storage_key.clone())
    );
    assert!(s.get_attachment(a.attachment.id).await.unwrap().is_none());
    assert_eq!(
        s.list_attachments(note.id, None, 100).await.unwrap(),
        vec![b.attachment.clone()]
    );
    assert_eq!(s.delete_attachment(a.attachment.id).await.unwrap(), None);
    assert_eq!(get(&s, note.id).await, note, "the note is untouched");
}

async fn attachment_of_a_missing_note_is_not_found(s: DynStore) {
    let gone = create(&s, input("gone")).await;
    s.delete_note(gone.id).await.unwrap();
    for note_id in [gone.id, Uuid::now_v7()] {
        let a = attachment(note_id, "text/plain", 1, "text");
        let err = s
            .create_attachment(a.clone())
            .await
            .expect_err("no such note");
        assert!(matches!(err, StoreError::NotFound), "{err:?}");
        assert!(s.get_attachment(a.attachment.id).await.unwrap().is_none());
    }
}

/// The note's current document on the feed, as a follower reads it last:
/// (change number, extra text). An attachment's change re-reads the note
/// at the attachment event's number.
async fn feed_doc(s: &DynStore, id: Uuid) -> (i64, String) {
    let page = s.feed_changes(0, None, 1000, true).await.unwrap();
    page.changes
        .iter()
        .rev()
        .find_map(|(seq, change)| match change {
            Change::Upsert(doc) if doc.id == id => Some((*seq, doc.extra.clone())),
            _ => None,
        })
        .expect("the note is on the feed")
}

async fn attachment_text_joins_its_notes_search_document(s: DynStore) {
    let note = create(&s, tagged("doc", &["t"])).await;
    let (seq0, extra) = feed_doc(&s, note.id).await;
    assert_eq!(extra, "");
    // Created with text: the note's document changes.
    let with_text = attachment(note.id, "text/plain", 5, "alpha");
    attach(&s, &with_text).await;
    let (seq1, extra) = feed_doc(&s, note.id).await;
    assert!(seq1 > seq0);
    assert_eq!(extra, "alpha");
    // Text set later (the extract_text job).
    let later = attachment(note.id, "text/markdown", 5, "");
    attach(&s, &later).await;
    assert!(
        s.set_attachment_text(later.attachment.id, "beta")
            .await
            .unwrap()
    );
    let (seq2, extra) = feed_doc(&s, note.id).await;
    assert!(seq2 > seq1);
    let mut words: Vec<&str> = extra.split(' ').collect();
    words.sort();
    assert_eq!(words, ["alpha", "beta"]);
    assert!(!s.set_attachment_text(Uuid::now_v7(), "x").await.unwrap());
    // Deleting an attachment with text takes its text out again.
    s.delete_attachment(with_text.attachment.id).await.unwrap();
    let (seq3, extra) = feed_doc(&s, note.id).await;
    assert!(seq3 > seq2);
    assert_eq!(extra, "beta");
    // The note itself is untouched by all of this.
    assert_eq!(get(&s, note.id).await, note);
}

async fn attachments_present_names_those_that_exist(s: DynStore) {
    let note = create(&s, input("n")).await;
    let a = attachment(note.id, "text/plain", 1, "");
    let b = attachment(note.id, "text/plain", 1, "");
    attach(&s, &a).await;
    attach(&s, &b).await;
    s.delete_attachment(b.attachment.id).await.unwrap();
    let asked = [a.attachment.id, b.attachment.id, Uuid::now_v7()];
    let present = s.attachments_present(&asked).await.unwrap();
    assert_eq!(present, HashSet::from([a.attachment.id]));
    assert!(s.attachments_present(&[]).await.unwrap().is_empty());
}

async fn attachments_without_text_are_the_non_empty_ones_of_those_types(s: DynStore) {
    let note = create(&s, input("n")).await;
    let plain = attachment(note.id, "text/plain", 10, "");
    let markdown = attachment(note.id, "text/markdown", 10, "");
    let empty = attachment(note.id, "text/plain", 0, "");
    let image = attachment(note.id, "image/png", 10, "");
    let done = attachment(note.id, "text/plain", 10, "already");
    for x in [&plain, &markdown, &empty, &image, &done] {
        attach(&s, x).await;
    }
    let ids = |v: Vec<Uuid>| v.into_iter().collect::<HashSet<_>>();
    let want = HashSet::from([plain.attachment.id, markdown.attachment.id]);
    let types = ["text/plain", "text/markdown"];
    assert_eq!(ids(s.attachments_without_text(&types).await.unwrap()), want);
    assert_eq!(
        ids(s
            .attachments_without_text(&["text/markdown"])
            .await
            .unwrap()),
        HashSet::from([markdown.attachment.id])
    );
    s.set_attachment_text(plain.attachment.id, "found")
        .await
        .unwrap();
    assert_eq!(
        ids(s.attachments_without_text(&types).await.unwrap()),
        HashSet::from([markdown.attachment.id])
    );
    assert!(s.attachments_without_text(&[]).await.unwrap().is_empty());
}

async fn keys_are_created_listed_found_and_revoked(s: DynStore) {
    assert!(s.list_keys().await.unwrap().is_empty());
    let reader = new_key("reader", &[Scope::Read]);
    tokio::time::sleep(Duration::from_millis(2)).await;
    let writer = new_key("ci", &[Scope::Read, Scope::Write]);
    // Listed by creation time, whatever order they were stored in.
    s.create_key(writer.clone()).await.unwrap();
    s.create_key(reader.clone()).await.unwrap();
    assert_eq!(
        s.list_keys().await.unwrap(),
        vec![reader.key.clone(), writer.key.clone()]
    );
    assert_eq!(
        s.find_key(&writer.hash).await.unwrap(),
        Some((writer.key.id, vec![Scope::Read, Scope::Write]))
    );
    assert_eq!(
        s.find_key(&reader.hash).await.unwrap(),
        Some((reader.key.id, vec![Scope::Read]))
    );
    assert_eq!(s.find_key(&generate_key().hash).await.unwrap(), None);

    assert!(s.delete_key(writer.key.id).await.unwrap());
    assert_eq!(s.find_key(&writer.hash).await.unwrap(), None);
    assert_eq!(s.list_keys().await.unwrap(), vec![reader.key.clone()]);
    assert!(
        !s.delete_key(writer.key.id).await.unwrap(),
        "already revoked"
    );
    assert!(!s.delete_key(Uuid::now_v7()).await.unwrap());
}

async fn feed_numbers_every_note_write_in_order(s: DynStore) {
    let head0 = s.feed_head().await.unwrap();
    let a = create(&s, input("a")).await;
    let b = create(&s, input("b")).await;
    let c = create(&s, input("c")).await;
    let head = s.feed_head().await.unwrap();
    assert_eq!(head.generation, head0.generation);
    assert_eq!(head.seq, head0.seq + 3);
    let page = s.feed_changes(head0.seq, None, 100, true).await.unwrap();
    let seqs: Vec<i64> = (1..=3).map(|i| head0.seq + i).collect();
    assert_eq!(
        changes(&page),
        vec![
            (seqs[0], a.id, false),
            (seqs[1], b.id, false),
            (seqs[2], c.id, false)
        ]
    );
    assert_eq!(page.through, head.seq);
    // The document is the note as it is now.
    match &page.changes[1].1 {
        Change::Upsert(doc) => {
            assert_eq!((doc.title.as_str(), doc.body.as_str()), ("b", "body of b"));
            assert!(doc.tags.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // A changed note shows up once, under its new number.
    s.update_note(a.id, tagged("a2", &["k"]), 1).await.unwrap();
    let head = s.feed_head().await.unwrap();
    let page = s.feed_changes(head0.seq, None, 100, true).await.unwrap();
    assert_eq!(
        changes(&page),
        vec![
            (seqs[1], b.id, false),
            (seqs[2], c.id, false),
            (head.seq, a.id, false)
        ]
    );
    match &page.changes[2].1 {
        Change::Upsert(doc) => assert_eq!(
            (doc.title.as_str(), &doc.tags[..]),
            ("a2", &["k".to_owned()][..])
        ),
        other => panic!("{other:?}"),
    }
    // Ingest numbers its notes too.
    s.ingest(vec![input("d"), input("e")]).await.unwrap();
    let after = s.feed_changes(head.seq, None, 100, true).await.unwrap();
    assert_eq!(changes(&after).len(), 2);
    assert_eq!(after.through, s.feed_head().await.unwrap().seq);
    // Nothing after the head.
    let head = s.feed_head().await.unwrap();
    let none = s.feed_changes(head.seq, None, 100, true).await.unwrap();
    assert!(none.changes.is_empty());
    assert_eq!(none.through, head.seq);
}

async fn feed_reports_deletions_only_when_asked(s: DynStore) {
    let head0 = s.feed_head().await.unwrap();
    let a = create(&s, input("a")).await;
    let b = create(&s, input("b")).await;
    s.delete_note(a.id).await.unwrap();
    let head = s.feed_head().await.unwrap();
    assert_eq!(head.seq, head0.seq + 3, "a deletion takes a number");
    let with = s.feed_changes(head0.seq, None, 100, true).await.unwrap();
    assert_eq!(
        changes(&with),
        vec![(head0.seq + 2, b.id, false), (head.seq, a.id, true)]
    );
    assert_eq!(with.through, head.seq);
    let without = s.feed_changes(head0.seq, None, 100, false).await.unwrap();
    assert_eq!(changes(&without), vec![(head0.seq + 2, b.id, false)]);
    assert_eq!(without.through, head.seq);
}

async fn feed_pages_are_complete_up_to_their_through(s: DynStore) {
    let head0 = s.feed_head().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(create(&s, input(&format!("n{i}"))).await.id);
    }
    s.delete_note(ids[1]).await.unwrap();
    s.update_note(ids[3], input("n3 again"), 1).await.unwrap();
    s.delete_note(ids[5]).await.unwrap();
    let head = s.feed_head().await.unwrap();
    let whole = changes(&s.feed_changes(head0.seq, None, 1000, true).await.unwrap());
    for limit in [1, 2, 3] {
        let mut after = head0.seq;
        let mut paged = Vec::new();
        while after < head.seq {
            let page = s.feed_changes(after, None, limit, true).await.unwrap();
            assert!(page.through > after, "limit {limit}: a page moves on");
            let got = changes(&page);
            assert!(
                got.iter()
                    .all(|(seq, _, _)| *seq > after && *seq <= page.through),
                "limit {limit}: changes lie within (after, through]"
            );
            paged.extend(got);
            after = page.through;
        }
        assert_eq!(after, head.seq);
        assert_eq!(paged, whole, "limit {limit}: pages add up to the whole");
    }
}

async fn feed_changes_stop_at_upto(s: DynStore) {
    let head0 = s.feed_head().await.unwrap();
    let a = create(&s, input("a")).await;
    let b = create(&s, input("b")).await;
    create(&s, input("c")).await;
    let upto = head0.seq + 2;
    let page = s
        .feed_changes(head0.seq, Some(upto), 100, true)
        .await
        .unwrap();
    assert_eq!(
        changes(&page),
        vec![(head0.seq + 1, a.id, false), (head0.seq + 2, b.id, false)]
    );
    assert_eq!(page.through, upto);
}

async fn renew_feed_starts_a_new_generation(s: DynStore) {
    create(&s, input("a")).await;
    let before = s.feed_head().await.unwrap();
    let renewed = s.renew_feed().await.unwrap();
    assert_ne!(renewed.generation, before.generation);
    assert_eq!(renewed.seq, before.seq);
    assert_eq!(s.feed_head().await.unwrap(), renewed);
    let again = s.renew_feed().await.unwrap();
    assert_ne!(again.generation, renewed.generation);
}

async fn watch_feed_announces_a_change_where_the_backend_can(s: DynStore) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = s.watch_feed(Arc::new(move || {
        let _ = tx.send(());
    }));
    // Where the backend cannot announce (SQLite), followers poll: no promise.
    let Some(watcher) = watcher else { return };
    // It announces once on (re)connecting, for what it may have missed:
    // from then on it listens.
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the watcher connects")
        .expect("the watcher is alive");
    while rx.try_recv().is_ok() {}
    create(&s, input("announced")).await;
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a committed change is announced soon")
        .expect("the watcher is alive");
    watcher.abort();
}

async fn is_empty_means_no_notes_attachments_or_keys(s: DynStore) {
    assert!(s.is_empty().await.unwrap());
    let key = new_key("k", &[Scope::Admin]);
    s.create_key(key.clone()).await.unwrap();
    assert!(!s.is_empty().await.unwrap(), "a key");
    s.delete_key(key.key.id).await.unwrap();
    assert!(s.is_empty().await.unwrap());
    let note = create(&s, input("n")).await;
    assert!(!s.is_empty().await.unwrap(), "a note");
    s.delete_note(note.id).await.unwrap();
    assert!(s.is_empty().await.unwrap(), "deleted notes leave nothing");
}

/// Keys, notes (one with attachments, with and without text) and a deleted
/// note; returns them as an export should list them.
async fn fill(s: &DynStore) -> (Vec<NewKey>, Vec<Note>, Vec<StoredAttachment>) {
    let k1 = new_key("one", &[Scope::Read]);
    let k2 = new_key("two", &[Scope::Admin]);
    s.create_key(k1.clone()).await.unwrap();
    s.create_key(k2.clone()).await.unwrap();
    let mut metadata = Map::new();
    metadata.insert("m".into(), Value::from(1));
    let n1 = create(
        s,
        NoteInput {
            metadata,
            ..tagged("first", &["a", "b"])
        },
    )
    .await;
    let n2 = create(s, external("second", "ext-2")).await;
    let n2 = s
        .update_note(n2.id, external("second v2", "ext-2"), 1)
        .await
        .unwrap();
    let gone = create(s, input("deleted")).await;
    s.delete_note(gone.id).await.unwrap();
    let a1 = attachment(n1.id, "text/plain", 4, "searchable words");
    let a2 = attachment(n1.id, "image/png", 9, "");
    attach(s, &a1).await;
    attach(s, &a2).await;
    (vec![k1, k2], vec![n1, n2], vec![a1, a2])
}

fn sorted_by_id<T: Clone>(items: &[T], id: impl Fn(&T) -> Uuid) -> Vec<T> {
    let mut v = items.to_vec();
    v.sort_by_key(id);
    v
}

async fn export_sends_keys_then_notes_then_attachments(s: DynStore) {
    let (keys, notes, attachments) = fill(&s).await;
    let records = export(&s).await;
    let mut want: Vec<Record> = sorted_by_id(&keys, |k| k.key.id)
        .into_iter()
        .map(|k| Record::Key {
            key: k.key,
            hash: k.hash,
        })
        .collect();
    // `fill` changed the second note once: its first version is a revision.
    let second = notes[1].id;
    let revision = s
        .get_revision(second, 1)
        .await
        .unwrap()
        .expect("version 1 kept");
    assert_eq!((revision.title.as_str(), revision.version), ("second", 1));
    want.extend(notes.into_iter().map(Record::Note));
    want.push(Record::Revision {
        note_id: second,
        revision,
    });
    want.extend(
        sorted_by_id(&attachments, |a| a.attachment.id)
            .into_iter()
            .map(|a| Record::Attachment {
                attachment: a.attachment,
                storage_key: a.storage_key,
                search_text: a.search_text,
            }),
    );
    assert_eq!(records, want);
}

/// `fill`, its export, and the store emptied again: an export to import.
async fn exported_then_emptied(s: &DynStore) -> (Vec<NewKey>, Vec<Note>, Vec<Record>) {
    let (keys, notes, _) = fill(s).await;
    let exported = export(s).await;
    for note in &notes {
        s.delete_note(note.id).await.unwrap();
    }
    for key in &keys {
        s.delete_key(key.key.id).await.unwrap();
    }
    assert!(s.is_empty().await.unwrap());
    (keys, notes, exported)
}

async fn import_restores_an_export_as_it_was(s: DynStore) {
    // Empty the store again, then bring it back from the export.
    let (keys, notes, exported) = exported_then_emptied(&s).await;
    let before = s.feed_head().await.unwrap();
    let written = import(&s, exported.iter().cloned().map(Ok).collect())
        .await
        .expect("import");
    assert_eq!(written, exported.len() as u64);
    assert_eq!(export(&s).await, exported, "everything as it was");
    for note in &notes {
        assert_eq!(
            get(&s, note.id).await,
            *note,
            "ids, times and versions kept"
        );
    }
    assert_eq!(
        s.find_key(&keys[0].hash).await.unwrap().map(|k| k.0),
        Some(keys[0].key.id)
    );
    // Every index rebuilds: a new generation, and every note on the feed.
    let head = s.feed_head().await.unwrap();
    assert_ne!(head.generation, before.generation);
    let page = s.feed_changes(before.seq, None, 100, false).await.unwrap();
    let on_feed: HashSet<Uuid> = changes(&page).into_iter().map(|(_, id, _)| id).collect();
    assert_eq!(on_feed, notes.iter().map(|n| n.id).collect::<HashSet<_>>());
    assert_eq!(page.through, head.seq);
    assert_eq!(feed_doc(&s, notes[0].id).await.1, "searchable words");
}

async fn import_rolls_back_when_the_producer_fails(s: DynStore) {
    fill(&s).await;
    let exported = export(&s).await;
    let fresh_notes: Vec<Uuid> = exported
        .iter()
        .filter_map(|r| match r {
            Record::Note(n) => Some(n.id),
            _ => None,
        })
        .collect();
    for id in &fresh_notes {
        s.delete_note(*id).await.unwrap();
    }
    for key in s.list_keys().await.unwrap() {
        s.delete_key(key.id).await.unwrap();
    }
    assert!(s.is_empty().await.unwrap());
    let head = s.feed_head().await.unwrap();
    let mut records: Vec<Result<Record, StoreError>> = exported.into_iter().map(Ok).collect();
    records.push(Err(StoreError::Internal(
        "the backup file is truncated".into(),
    )));
    let result = import(&s, records).await;
    assert!(result.is_err(), "{result:?}");
    assert!(s.is_empty().await.unwrap(), "nothing was written");
    assert_eq!(s.count_notes().await.unwrap(), 0);
    assert_eq!(s.feed_head().await.unwrap(), head);
}

async fn import_of_an_attachment_without_its_note_fails(s: DynStore) {
    let note = Note {
        id: Uuid::now_v7(),
        title: "restored".into(),
        body: String::new(),
        tags: vec![],
        external_id: None,
        metadata: Map::new(),
        created_at: timestamp::now(),
        updated_at: timestamp::now(),
        version: 4,
    };
    let orphan = attachment(Uuid::now_v7(), "text/plain", 1, "");
    let records = vec![
        Ok(Record::Note(note)),
        Ok(Record::Attachment {
            attachment: orphan.attachment,
            storage_key: orphan.storage_key,
            search_text: String::new(),
        }),
    ];
    let result = import(&s, records).await;
    assert!(result.is_err(), "{result:?}");
    assert!(s.is_empty().await.unwrap(), "nothing was written");
}

/// Issue 21: every unique violation was reported as "a note with this
/// external_id already exists", a duplicate note or attachment id in a
/// snapshot included. Each now names what is duplicated, and the import
/// writes nothing.
async fn import_of_a_duplicate_names_what_is_duplicated(s: DynStore) {
    let (_, _, exported) = exported_then_emptied(&s).await;
    let first = |want: &dyn Fn(&Record) -> bool| exported.iter().find(|r| want(r)).unwrap().clone();
    let attachment = first(&|r| matches!(r, Record::Attachment { .. }));
    let key = first(&|r| matches!(r, Record::Key { .. }));
    let cases = [
        (
            "a note with this id",
            first(&|r| matches!(r, Record::Note(n) if n.external_id.is_none())),
        ),
        (
            "a note with this external_id",
            match first(&|r| matches!(r, Record::Note(n) if n.external_id.is_some())) {
                Record::Note(n) => Record::Note(Note {
                    id: Uuid::now_v7(),
                    ..n
                }),
                _ => unreachable!(),
            },
        ),
        (
            "an attachment with this id",
            match attachment.clone() {
                Record::Attachment {
                    attachment,
                    storage_key,
                    search_text,
                } => Record::Attachment {
                    attachment,
                    storage_key: format!("{storage_key}-copy"),
                    search_text,
                },
                _ => unreachable!(),
            },
        ),
        (
            "an attachment with this storage key",
            match attachment {
                Record::Attachment {
                    attachment,
                    storage_key,
                    search_text,
                } => Record::Attachment {
                    attachment: Attachment {
                        id: Uuid::now_v7(),
                        ..attachment
                    },
                    storage_key,
                    search_text,
                },
                _ => unreachable!(),
            },
        ),
        (
            "an API key with this id",
            match key.clone() {
                Record::Key { key, .. } => Record::Key {
                    key,
                    hash: "0".repeat(64),
                },
                _ => unreachable!(),
            },
        ),
        (
            "an API key with this secret",
            match key {
                Record::Key { key, hash } => Record::Key {
                    key: ApiKey {
                        id: Uuid::now_v7(),
                        ..key
                    },
                    hash,
                },
                _ => unreachable!(),
            },
        ),
    ];
    for (expect, duplicate) in cases {
        let mut records: Vec<Result<Record, StoreError>> =
            exported.iter().cloned().map(Ok).collect();
        records.push(Ok(duplicate));
        let err = import(&s, records).await.expect_err(expect);
        assert!(
            matches!(&err, StoreError::Conflict(m) if m.starts_with(expect)),
            "{expect}: {err:?}"
        );
        assert!(s.is_empty().await.unwrap(), "{expect}: rows kept");
    }
}

async fn an_update_keeps_the_state_it_replaced_as_a_revision(s: DynStore) {
    let v1 = create(&s, tagged("one", &["a"]).by("alice")).await;
    let v2 = s
        .update_note(v1.id, tagged("two", &["b"]).by("bob"), 1)
        .await
        .unwrap();
    let v3 = s
        .update_note(v1.id, input("three").by("carol"), 2)
        .await
        .unwrap();
    let listed = s.list_revisions(v1.id, None, 10).await.unwrap();
    let versions: Vec<(i64, Option<&str>)> = listed
        .iter()
        .map(|r| (r.version, r.changed_by.as_deref()))
        .collect();
    assert_eq!(versions, [(2, Some("bob")), (1, Some("alice"))]);
    assert_eq!(listed[1].body_bytes, "body of one".len() as u64);
    let one = s.get_revision(v1.id, 1).await.unwrap().unwrap();
    assert_eq!(one.title, "one");
    assert_eq!(one.body, "body of one");
    assert_eq!(one.tags, ["a"]);
    assert_eq!(one.updated_at, v1.updated_at);
    assert_eq!(
        s.get_revision(v1.id, 2).await.unwrap().unwrap().updated_at,
        v2.updated_at
    );
    // Paging: older than version 2, and a limit.
    let older = s.list_revisions(v1.id, Some(2), 10).await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].version, 1);
    assert_eq!(s.list_revisions(v1.id, None, 1).await.unwrap().len(), 1);
    // The current version reads as the note is (it is not a stored
    // revision: the count says two); an unknown one is none.
    let current = s.get_revision(v1.id, 3).await.unwrap().unwrap();
    assert_eq!(current.version, 3);
    assert_eq!(current.updated_at, v3.updated_at);
    assert_eq!(current.changed_by.as_deref(), Some("carol"));
    assert!(s.get_revision(v1.id, 4).await.unwrap().is_none());
    assert!(s.get_revision(Uuid::now_v7(), 1).await.unwrap().is_none());
    assert_eq!(s.count_revisions().await.unwrap(), 2);
}

async fn an_ingest_update_keeps_a_revision_and_an_unchanged_one_none(s: DynStore) {
    s.ingest(vec![external("doc", "d-1").by("first")])
        .await
        .unwrap();
    s.ingest(vec![external("doc", "d-1").by("again")])
        .await
        .unwrap();
    assert_eq!(s.count_revisions().await.unwrap(), 0, "nothing changed");
    s.ingest(vec![external("doc v2", "d-1").by("second")])
        .await
        .unwrap();
    let query = ListQuery {
        tag: None,
        limit: 10,
        after: None,
    };
    let id = s.list_notes(&query).await.unwrap().items[0].id;
    let listed = s.list_revisions(id, None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].title, "doc");
    assert_eq!(listed[0].changed_by.as_deref(), Some("first"));
}

async fn a_refused_update_keeps_no_revision(s: DynStore) {
    let note = create(&s, input("one")).await;
    let stale = s.update_note(note.id, input("two"), 7).await;
    assert!(
        matches!(stale, Err(StoreError::VersionMismatch { .. })),
        "{stale:?}"
    );
    assert_eq!(s.count_revisions().await.unwrap(), 0);
}

async fn prune_revisions_keeps_the_newest_and_drops_the_old(s: DynStore) {
    let a = create(&s, input("a0")).await;
    let b = create(&s, input("b0")).await;
    for v in 1..=4 {
        s.update_note(a.id, input(&format!("a{v}")), v)
            .await
            .unwrap();
    }
    s.update_note(b.id, input("b1"), 1).await.unwrap();
    assert_eq!(s.count_revisions().await.unwrap(), 5);
    assert_eq!(s.prune_revisions(2, None).await.unwrap(), 2);
    let kept: Vec<i64> = s
        .list_revisions(a.id, None, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(kept, [4, 3]);
    assert_eq!(s.list_revisions(b.id, None, 10).await.unwrap().len(), 1);
    // By age: a cut-off before every revision removes none, after all of them every one.
    let past = timestamp::now() - chrono::Duration::days(1);
    assert_eq!(s.prune_revisions(100, Some(past)).await.unwrap(), 0);
    let future = timestamp::now() + chrono::Duration::seconds(1);
    assert_eq!(s.prune_revisions(100, Some(future)).await.unwrap(), 3);
    assert_eq!(s.count_revisions().await.unwrap(), 0);
}

async fn a_deleted_note_takes_its_revisions(s: DynStore) {
    let note = create(&s, input("one")).await;
    s.update_note(note.id, input("two"), 1).await.unwrap();
    assert_eq!(s.count_revisions().await.unwrap(), 1);
    s.delete_note(note.id).await.unwrap();
    assert_eq!(s.count_revisions().await.unwrap(), 0);
}

async fn a_trashed_note_leaves_reads_and_the_feed_and_comes_back(s: DynStore) {
    let note = create(&s, tagged("wombat", &["zoo"])).await;
    let a = attachment(note.id, "text/plain", 4, "burrow");
    attach(&s, &a).await;
    let before = s.feed_head().await.unwrap();
    assert!(s.trash_note(note.id, "alice").await.unwrap());
    assert!(
        !s.trash_note(note.id, "alice").await.unwrap(),
        "already in the trash"
    );
    assert!(s.get_note(note.id).await.unwrap().is_none());
    assert!(s.get_attachment(a.attachment.id).await.unwrap().is_none());
    assert!(
        s.list_attachments(note.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.count_notes().await.unwrap(), 0);
    let changed = s.update_note(note.id, input("x"), 1).await;
    assert!(matches!(changed, Err(StoreError::NotFound)), "{changed:?}");
    // The feed reports it deleted, and an index built from scratch skips it.
    let page = s.feed_changes(before.seq, None, 100, true).await.unwrap();
    assert_eq!(changes(&page), [(before.seq + 1, note.id, true)]);
    let all = s.feed_changes(0, None, 100, false).await.unwrap();
    assert!(changes(&all).is_empty(), "{:?}", changes(&all));

    let back = s.restore_note(note.id).await.unwrap().expect("restored");
    assert_eq!(back, note, "the same note, same version");
    assert!(s.restore_note(note.id).await.unwrap().is_none());
    assert!(s.get_attachment(a.attachment.id).await.unwrap().is_some());
    let page = s
        .feed_changes(before.seq + 1, None, 100, true)
        .await
        .unwrap();
    assert_eq!(changes(&page), [(before.seq + 2, note.id, false)]);
}

async fn the_trash_lists_newest_first_and_purges_oldest_first(s: DynStore) {
    let mut ids = Vec::new();
    for i in 0..3 {
        let n = create(&s, input(&format!("n{i}"))).await;
        let a = attachment(n.id, "image/png", 3, "");
        attach(&s, &a).await;
        s.trash_note(n.id, "bob").await.unwrap();
        ids.push((n.id, a.storage_key));
    }
    let page = s.list_trash(None, 2).await.unwrap();
    let listed: Vec<Uuid> = page.items.iter().map(|t| t.note.id).collect();
    assert_eq!(listed, [ids[2].0, ids[1].0]);
    assert_eq!(page.items[0].deleted_by.as_deref(), Some("bob"));
    let rest = s.list_trash(page.next, 2).await.unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.next.is_none());
    assert_eq!(s.count_trashed().await.unwrap(), 3);

    let keys = s
        .purge_trashed(ids[1].0)
        .await
        .unwrap()
        .expect("was trashed");
    assert_eq!(keys, [ids[1].1.clone()]);
    assert!(s.purge_trashed(ids[1].0).await.unwrap().is_none());
    let past = timestamp::now() - chrono::Duration::days(1);
    assert_eq!(s.purge_trash(Some(past), 10).await.unwrap().0, 0);
    let (n, keys) = s.purge_trash(None, 1).await.unwrap();
    assert_eq!((n, keys), (1, vec![ids[0].1.clone()]), "oldest first");
    assert_eq!(s.count_trashed().await.unwrap(), 1);
}

async fn an_ingest_brings_a_trashed_note_back(s: DynStore) {
    s.ingest(vec![external("doc", "d-1")]).await.unwrap();
    let query = ListQuery {
        tag: None,
        limit: 10,
        after: None,
    };
    let id = s.list_notes(&query).await.unwrap().items[0].id;
    s.trash_note(id, "alice").await.unwrap();
    let counts = s.ingest(vec![external("doc", "d-1")]).await.unwrap();
    assert_eq!(
        counts,
        IngestCounts {
            created: 0,
            updated: 1,
            unchanged: 0
        }
    );
    let back = get(&s, id).await;
    assert_eq!(back.title, "doc");
    assert_eq!(s.count_trashed().await.unwrap(), 0);
}

async fn export_and_import_carry_the_trash(s: DynStore) {
    let kept = create(&s, input("kept")).await;
    let trashed = create(&s, input("trashed")).await;
    s.trash_note(trashed.id, "carol").await.unwrap();
    let exported = export(&s).await;
    assert!(
        exported
            .iter()
            .any(|r| matches!(r, Record::Trashed { note_id, deleted_by, .. }
        if *note_id == trashed.id && deleted_by.as_deref() == Some("carol")))
    );
    s.delete_note(kept.id).await.unwrap();
    s.delete_note(trashed.id).await.unwrap();
    import(&s, exported.into_iter().map(Ok).collect())
        .await
        .expect("import");
    assert_eq!(get(&s, kept.id).await.title, "kept");
    assert!(
        s.get_note(trashed.id).await.unwrap().is_none(),
        "still trashed"
    );
    let trash = s.list_trash(None, 10).await.unwrap();
    assert_eq!(trash.items.len(), 1);
    assert_eq!(trash.items[0].note.id, trashed.id);
}

/// Every change after `after`: (kind, note id, attachment id), in order.
async fn changes_after(s: &DynStore, after: i64) -> Vec<(ChangeKind, Uuid, Option<Uuid>)> {
    let page = s.changes(after, 1000, None).await.unwrap();
    assert_eq!(page.through, page.head, "one page holds them all");
    page.entries
        .iter()
        .map(|e| (e.kind, e.note_id, e.attachment_id))
        .collect()
}

async fn changes_list_each_note_once_as_its_reader_sees_it(s: DynStore) {
    let start = s.changes(0, 1, None).await.unwrap().head;
    let a = create(&s, input("a")).await;
    let b = create(&s, input("b")).await;
    let mid = s.changes(0, 1, None).await.unwrap().head;
    s.update_note(a.id, input("a2"), 1).await.unwrap();
    let file = attachment(b.id, "text/plain", 3, "abc");
    attach(&s, &file).await;
    s.trash_note(b.id, "x").await.unwrap();
    s.restore_note(b.id).await.unwrap();
    use ChangeKind::*;
    // From before both: each note once, created, at its latest change,
    // among the events, in change order.
    assert_eq!(
        changes_after(&s, start).await,
        [
            (NoteCreated, a.id, None),
            (AttachmentCreated, b.id, Some(file.attachment.id)),
            (NoteDeleted, b.id, None),
            (NoteCreated, b.id, None),
        ]
    );
    // From between: what happened to them since.
    assert_eq!(
        changes_after(&s, mid).await,
        [
            (NoteUpdated, a.id, None),
            (AttachmentCreated, b.id, Some(file.attachment.id)),
            (NoteDeleted, b.id, None),
            (NoteRestored, b.id, None),
        ]
    );
    let page = s.changes(mid, 1000, None).await.unwrap();
    let a_entry = page.entries.iter().find(|e| e.note_id == a.id).unwrap();
    assert_eq!(a_entry.version, Some(2));
    assert!(a_entry.note.is_none(), "no note unless asked");
}

async fn changes_keep_events_until_pruned_and_raise_the_floor(s: DynStore) {
    let note = create(&s, input("gone")).await;
    s.delete_note(note.id).await.unwrap();
    let before = s.changes(0, 1000, None).await.unwrap();
    assert_eq!(before.floor, 0);
    let deletion = before
        .entries
        .iter()
        .find(|e| e.kind == ChangeKind::NoteDeleted && e.note_id == note.id)
        .expect("the deletion is in the feed")
        .seq;
    // Nothing is old enough yet.
    let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    assert_eq!(s.prune_changes(an_hour_ago, 100).await.unwrap(), 0);
    let soon = chrono::Utc::now() + chrono::Duration::seconds(1);
    assert!(s.prune_changes(soon, 100).await.unwrap() >= 1);
    let after = s.changes(0, 1000, None).await.unwrap();
    assert!(after.floor >= deletion, "{} < {deletion}", after.floor);
    assert!(after.entries.iter().all(|e| e.note_id != note.id));
    assert_eq!(after.epoch, before.epoch, "pruning keeps the numbering");
    // The index's view of the feed knows the floor too.
    assert_eq!(s.feed_head().await.unwrap().floor, after.floor);
}

async fn changes_carry_notes_within_a_budget(s: DynStore) {
    let start = s.changes(0, 1, None).await.unwrap().head;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut n = input(&format!("n{i}"));
        n.body = "x".repeat(1000);
        ids.push(create(&s, n).await.id);
    }
    let all = s.changes(start, 100, Some(1_000_000)).await.unwrap();
    let got: Vec<Uuid> = all
        .entries
        .iter()
        .map(|e| e.note.as_ref().unwrap().id)
        .collect();
    assert_eq!(got, ids);
    assert_eq!(all.through, all.head);
    // A budget of about two notes' text: the page ends after two, and says
    // where, so the next one goes on.
    let part = s.changes(start, 100, Some(2_500)).await.unwrap();
    assert_eq!(part.entries.len(), 2);
    assert_eq!(part.through, part.entries[1].seq);
    let rest = s.changes(part.through, 100, Some(1_000_000)).await.unwrap();
    assert_eq!(rest.entries.len(), 3);
    // Even a budget smaller than one note gives that note.
    let one = s.changes(start, 100, Some(1)).await.unwrap();
    assert_eq!(one.entries.len(), 1);
}

async fn an_import_starts_a_new_epoch_of_the_feed(s: DynStore) {
    let note = create(&s, input("kept")).await;
    let exported = export(&s).await;
    let before = s.changes(0, 1000, None).await.unwrap();
    s.delete_note(note.id).await.unwrap();
    import(&s, exported.into_iter().map(Ok).collect())
        .await
        .expect("import");
    let after = s.changes(0, 1000, None).await.unwrap();
    assert_ne!(after.epoch, before.epoch);
    assert_eq!(after.floor, 0);
    let created: Vec<_> = after
        .entries
        .iter()
        .filter(|e| e.kind == ChangeKind::NoteCreated)
        .map(|e| e.note_id)
        .collect();
    assert_eq!(created, [note.id]);
}

/// An export's reads (issue #26): keys of the notes outside the trash by
/// (created_at, id), paged after a key, filtered by tag; then those notes
/// in the order asked, each with its attachments in upload order.
async fn export_keys_page_live_notes_by_creation_then_id(s: DynStore) {
    // One batch shares its creation time: the id orders it.
    let batch: Vec<NoteInput> = (0..5)
        .map(|i| {
            tagged(
                &format!("batch {i}"),
                if i % 2 == 0 { &["even"] } else { &[] },
            )
        })
        .collect();
    s.ingest(batch).await.unwrap();
    let later = create(&s, tagged("later", &["even"])).await;
    let trashed = create(&s, tagged("trashed", &["even"])).await;
    assert!(s.trash_note(trashed.id, "alice").await.unwrap());

    let all = s.export_keys(None, None, 100).await.unwrap();
    assert_eq!(all.len(), 6, "the trashed note is left out");
    let mut sorted = all.clone();
    sorted.sort_by_key(|k| (k.created_at, k.id));
    assert_eq!(all, sorted);
    assert_eq!(all.last().unwrap().id, later.id);
    assert!(all[..5].iter().all(|k| k.created_at == all[0].created_at));

    let mut paged: Vec<ExportKey> = Vec::new();
    loop {
        let page = s.export_keys(None, paged.last().copied(), 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        paged.extend(page);
    }
    assert_eq!(paged, all);

    let even = s.export_keys(Some("even"), None, 100).await.unwrap();
    assert_eq!(even.len(), 4, "batch 0, 2, 4 and later");
    // The count a progress shows is what the pages hold.
    assert_eq!(s.export_count(None).await.unwrap(), 6);
    assert_eq!(s.export_count(Some("even")).await.unwrap(), 4);
    assert_eq!(s.export_count(Some("no such tag")).await.unwrap(), 0);
    let after_first = s
        .export_keys(Some("even"), Some(even[0]), 100)
        .await
        .unwrap();
    assert_eq!(after_first, even[1..]);

    let a1 = attachment(later.id, "text/plain", 3, "");
    let a2 = attachment(later.id, "image/png", 4, "");
    attach(&s, &a1).await;
    attach(&s, &a2).await;
    let ids = [later.id, trashed.id, all[0].id];
    let notes = s.export_notes(&ids).await.unwrap();
    let got: Vec<Uuid> = notes.iter().map(|(n, _)| n.id).collect();
    assert_eq!(
        got,
        [later.id, all[0].id],
        "in the order asked, trashed left out"
    );
    let attachments: Vec<Uuid> = notes[0].1.iter().map(|a| a.attachment.id).collect();
    assert_eq!(attachments, [a1.attachment.id, a2.attachment.id]);
    assert_eq!(notes[0].1[0].storage_key, a1.storage_key);
    assert!(notes[1].1.is_empty());
    assert_eq!(notes[0].0.body, "body of later");
}
