//! API keys as the master key manages them.

use uuid::Uuid;

use super::{ServiceError, ServiceResult};
use crate::{
    domain::{
        keys::{ApiKey, CreatedKey, KeyRequest, generate_key},
        timestamp,
    },
    store::{Keys, NewKey},
};

/// Validates and stores a new key; the secret is only in the answer.
pub async fn create(store: &dyn Keys, req: KeyRequest) -> ServiceResult<CreatedKey> {
    let (name, scopes) = req.validate().map_err(ServiceError::Invalid)?;
    let generated = generate_key();
    let key = ApiKey {
        id: Uuid::now_v7(),
        name,
        scopes,
        prefix: generated.prefix,
        created_at: timestamp::now(),
    };
    store
        .create_key(NewKey {
            key: key.clone(),
            hash: generated.hash,
        })
        .await?;
    tracing::info!(key_id = %key.id, name = %key.name, "API key created");
    Ok(CreatedKey {
        api_key: key,
        key: generated.secret,
    })
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
