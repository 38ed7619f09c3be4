//! Pages of a listing: the limits every listing shares and its cursors.
//! A cursor is opaque to clients, so that its encoding can change; it
//! names the position to continue after.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::{ServiceError, ServiceResult};

pub const DEFAULT_PAGE: u32 = 20;
pub const MAX_PAGE: u32 = 100;

/// What a client asks of a listing: how many, and after which cursor.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageRequest<'a> {
    pub limit: Option<u32>,
    pub cursor: Option<&'a str>,
}

impl PageRequest<'_> {
    /// The page size (1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] if not given) and
    /// the position to continue after (none, or an empty cursor, is the
    /// first page).
    pub fn resolve(&self) -> ServiceResult<(u32, Option<i64>)> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ServiceError::invalid(
                "limit",
                format!("must be 1 to {MAX_PAGE}"),
            ));
        }
        let after = self
            .cursor
            .filter(|c| !c.is_empty())
            .map(decode)
            .transpose()?;
        Ok((limit, after))
    }
}

pub fn encode(position: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("n:{position}"))
}

fn decode(cursor: &str) -> ServiceResult<i64> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("n:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| ServiceError::invalid("cursor", "is not a cursor this API returned"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode(&encode(42)).unwrap(), 42);
        for bad in ["!!", "bjo", &URL_SAFE_NO_PAD.encode("x:1")] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_page_request_checks_its_limit_and_reads_its_cursor() {
        let first = PageRequest::default().resolve().unwrap();
        assert_eq!(first, (DEFAULT_PAGE, None));
        let cursor = encode(7);
        let next = PageRequest {
            limit: Some(5),
            cursor: Some(&cursor),
        };
        assert_eq!(next.resolve().unwrap(), (5, Some(7)));
        for limit in [0, MAX_PAGE + 1] {
            let bad = PageRequest {
                limit: Some(limit),
                cursor: None,
            };
            assert!(matches!(bad.resolve(), Err(ServiceError::Invalid(_))));
        }
        let empty = PageRequest {
            limit: None,
            cursor: Some(""),
        };
        assert_eq!(empty.resolve().unwrap(), (DEFAULT_PAGE, None));
    }
}
