//! API keys as the master key manages them.

use uuid::Uuid;

use super::{ServiceError, ServiceResult};
use crate::{
    domain::keys::{CreatedKey, IssuedKey, KeyRequest},
    store::{Keys, NewKey},
};

/// Validates and stores a new key; the secret is only in the answer.
pub async fn create(store: &dyn Keys, req: KeyRequest) -> ServiceResult<CreatedKey> {
    let IssuedKey { created, hash } = req.issue().map_err(ServiceError::Invalid)?;
    store
        .create_key(NewKey {
            key: created.api_key.clone(),
            hash,
        })
        .await?;
    tracing::info!(key_id = %created.api_key.id, name = %created.api_key.name, "API key created");
    Ok(created)
}

/// Revokes a key: every replica refuses it from its next request on.
pub async fn revoke(store: &dyn Keys, id: Uuid) -> ServiceResult<()> {
    if store.delete_key(id).await? {
        tracing::info!(key_id = %id, "API key revoked");
        Ok(())
    } else {
        Err(ServiceError::NotFound { what: "key", id })
    }
}
