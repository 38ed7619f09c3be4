//! The live change streams a process holds open: at most
//! `NOTES_MAX_STREAMS` in all and `NOTES_MAX_STREAMS_PER_KEY` per key, each
//! counted in the `changes_streams` gauge while it lives.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::http::{HeaderValue, StatusCode, header};

use super::error::ApiError;
use crate::config::Limits;

pub struct StreamSlots(Arc<Inner>);

struct Inner {
    max: usize,
    per_key: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_key: HashMap<String, usize>,
}

/// One stream's place: given back when the stream ends.
pub struct StreamSlot {
    inner: Arc<Inner>,
    key: String,
}

impl StreamSlots {
    pub fn new(limits: &Limits) -> Self {
        Self(Arc::new(Inner {
            max: limits.max_streams,
            per_key: limits.max_streams_per_key,
            held: Mutex::new(Held::default()),
        }))
    }

    /// A place for one more stream of `key`, or the answer that refuses it.
    pub fn take(&self, key: &str) -> Result<StreamSlot, ApiError> {
        let mut held = self.0.held.lock().expect("never poisoned");
        if held.total >= self.0.max {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!(
                    "this replica serves {} change streams, its most (NOTES_MAX_STREAMS); retry, another replica may take it",
                    self.0.max
                ),
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("5")));
        }
        let mine = held.by_key.entry(key.to_owned()).or_default();
        if *mine >= self.0.per_key {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                format!(
                    "this key already holds {} change streams open here, its most (NOTES_MAX_STREAMS_PER_KEY); close one first",
                    self.0.per_key
                ),
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("5")));
        }
        *mine += 1;
        held.total += 1;
        metrics::gauge!("changes_streams").set(held.total as f64);
        Ok(StreamSlot {
            inner: self.0.clone(),
            key: key.to_owned(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut held = self.inner.held.lock().expect("never poisoned");
        held.total -= 1;
        if let Some(n) = held.by_key.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.by_key.remove(&self.key);
            }
        }
        metrics::gauge!("changes_streams").set(held.total as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(max: usize, per_key: usize) -> StreamSlots {
        StreamSlots(Arc::new(Inner {
            max,
            per_key,
            held: Mutex::new(Held::default()),
        }))
    }

    #[test]
    fn streams_are_bounded_per_key_and_in_all_and_given_back() {
        let slots = slots(3, 2);
        let a1 = slots.take("a").unwrap();
        let _a2 = slots.take("a").unwrap();
        assert!(slots.take("a").is_err(), "a third for one key");
        let _b1 = slots.take("b").unwrap();
        assert!(slots.take("c").is_err(), "a fourth in all");
        drop(a1);
        let _c1 = slots.take("c").unwrap();
        assert!(slots.take("a").is_err());
        assert_eq!(slots.0.held.lock().unwrap().total, 3);
    }
}
