//! Opening what a process serves from: the database (migrated, checked or
//! verified as a dataset), the object store, the job queue and, for the
//! API, the search index.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::{
    blobs::Blobs,
    config::{Secret, Settings},
    index::{DynIndex, IndexSettings, TantivyIndex},
    jobs, queue,
    store::{self, PoolSettings},
};

/// What a process serves: the API (with in-process workers), or only workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Api,
    Worker,
}

pub struct Opened {
    pub jobs: jobs::Context,
    pub index: Option<DynIndex>,
    /// Read-only only: the directory this dataset's index lives in.
    pub index_dir: Option<PathBuf>,
    /// Read-only only: the dataset's feed generation.
    pub generation: Option<String>,
}

/// `busy`: an index directory in use by the dataset still serving, which
/// this one must not take even if it is the same dataset copied again.
pub async fn open(settings: &Settings, role: Role, busy: Option<&Path>) -> anyhow::Result<Opened> {
    let db = store::open(
        settings.database.url.expose(),
        &PoolSettings::new(&settings.database),
    )
    .await?;
    let store = db.store();
    let (mut index_dir, mut generation) = (None, None);
    if settings.server.read_only {
        let checked = async {
            crate::dataset::verify(store.as_ref()).await?;
            let found = store.feed_head().await?.generation;
            let dir = dataset_index_dir(settings, &found);
            let dir = if busy == Some(dir.as_path()) {
                let mut name = dir.into_os_string();
                name.push(format!("-{}", uuid::Uuid::now_v7().simple()));
                PathBuf::from(name)
            } else {
                dir
            };
            Ok::<_, anyhow::Error>((dir, found))
        };
        match checked.await {
            Ok((dir, found)) => (index_dir, generation) = (Some(dir), Some(found)),
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        }
    } else if settings.server.migrate_on_start {
        store.migrate().await?;
    } else {
        store::require_current(store.as_ref()).await?;
    }
    let blobs = Blobs::open(&settings.storage)?;
    let queue = queue::connect(settings.jobs.queue_url.as_ref().map(Secret::expose), &db).await?;
    let index: Option<DynIndex> = match role {
        Role::Api => {
            let dir = index_dir
                .clone()
                .unwrap_or_else(|| settings.index.dir.clone());
            let index_settings = IndexSettings {
                progress_every: settings.telemetry.progress_every,
                ..IndexSettings::new(dir, settings.index.memory_mb)
            };
            match TantivyIndex::open(store.clone(), index_settings) {
                Ok(index) => Some(Arc::new(index)),
                Err(e) => {
                    queue.close().await;
                    store.close().await;
                    return Err(e.into());
                }
            }
        }
        Role::Worker => None,
    };
    Ok(Opened {
        jobs: jobs::Context::new(store, blobs, queue, settings.clone()),
        index,
        index_dir,
        generation,
    })
}

/// One index directory per dataset, named by the dataset's feed
/// generation, so a replica restarted on the same file reuses its index
/// and a new file never meets an index of another.
fn dataset_index_dir(settings: &Settings, generation: &str) -> PathBuf {
    let name: String = generation
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    settings.index.dir.join(format!("dataset-{name}"))
}
