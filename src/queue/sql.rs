//! The statements the two SQL queues (SQLite, PostgreSQL) share, written
//! once. They are portable SQL with numbered placeholders (`$1`), which
//! [`Dialect::sql`] (the store's) turns into SQLite's `?1`. Each backend binds its own
//! column types (text on SQLite; uuid, jsonb, timestamptz on PostgreSQL)
//! and keeps only what really differs: the claim, notifications, ticks.

use sqlx::{AssertSqlSafe, Database, Encode, FromRow, Type, query::QueryAs};

use super::{JobKind, JobListQuery, JobStatus, Lane};

pub use crate::store::sql::Dialect;

impl Dialect {
    /// One page of `GET /jobs`, newest first, bound and ready to fetch
    /// (`limit + 1` rows, for [`crate::store::Page::from_rows`]).
    pub fn list<'q, DB, O>(self, q: &JobListQuery) -> QueryAs<'q, DB, O, DB::Arguments>
    where
        DB: Database,
        O: for<'r> FromRow<'r, DB::Row>,
        &'static str: Encode<'q, DB> + Type<DB>,
        i64: Encode<'q, DB> + Type<DB>,
    {
        let mut query = sqlx::query_as(AssertSqlSafe(self.list_sql(q)));
        if let Some(status) = q.status {
            query = query.bind(status.as_str());
        }
        if let Some(kind) = q.kind {
            query = query.bind(kind.as_str());
        }
        if let Some(after) = q.after {
            query = query.bind(after);
        }
        query.bind(q.limit as i64 + 1)
    }

    /// The listing's SQL, with only the filters given (so each combination
    /// can use its index). Placeholders, in order: the status, the kind and
    /// the cursor when the query has them, then the limit.
    fn list_sql(self, q: &JobListQuery) -> String {
        let mut conditions = Vec::new();
        for (present, column) in [
            (q.status.is_some(), "status ="),
            (q.kind.is_some(), "kind ="),
            (q.after.is_some(), "seq <"),
        ] {
            if present {
                conditions.push(format!(
                    "{column} {}",
                    self.placeholder(conditions.len() + 1)
                ));
            }
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        format!(
            "SELECT {COLUMNS} FROM jobs {filter} ORDER BY seq DESC LIMIT {}",
            self.placeholder(conditions.len() + 1)
        )
    }
}

/// What a read returns, in the order of the backends' row types.
macro_rules! columns {
    () => {
        "seq, id, kind, args, status, attempts, max_attempts, result, error, \
         created_at, started_at, finished_at, due_at"
    };
}
pub const COLUMNS: &str = columns!();

/// Binds: id, kind, args, status, attempts, max_attempts, created_at,
/// due_at, lane, owner.
pub const INSERT_COLUMNS: &str =
    "id, kind, args, status, attempts, max_attempts, created_at, due_at, lane, owner";

pub const INSERT: &str = "INSERT INTO jobs (id, kind, args, status, attempts, max_attempts, \
                          created_at, due_at, lane, owner) \
                          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// The insert, unless the owner ($10) already has as many jobs waiting or
/// running as the limit ($11) allows. Exact only when callers for one owner
/// take turns (SQLite's single writer; an advisory lock on PostgreSQL).
pub const INSERT_WITHIN: &str = "INSERT INTO jobs (id, kind, args, status, attempts, \
                                 max_attempts, created_at, due_at, lane, owner) \
                                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
                                 WHERE (SELECT count(*) FROM jobs WHERE owner = $10 \
                                        AND status IN ('queued', 'failed', 'running')) < $11";

/// Binds: id.
pub const GET: &str = concat!("SELECT ", columns!(), " FROM jobs WHERE id = $1");

/// A dead job back in the queue, its attempts reset. Binds: due_at, id.
pub const RETRY: &str = concat!(
    "UPDATE jobs SET status = 'queued', attempts = 0, result = NULL, error = NULL, \
     started_at = NULL, finished_at = NULL, due_at = $1, lease_token = NULL \
     WHERE id = $2 AND status = 'dead' RETURNING ",
    columns!()
);

pub const QUEUED: &str = "SELECT count(*) FROM jobs WHERE status IN ('queued', 'failed')";

pub const DEPTH: &str = "SELECT status, count(*) FROM jobs GROUP BY status";

/// Every status in order, with the counts a `DEPTH` query found.
pub fn depth(rows: Vec<(String, i64)>) -> Vec<(JobStatus, u64)> {
    JobStatus::ALL
        .iter()
        .map(|s| {
            let n = rows
                .iter()
                .find(|(name, _)| name == s.as_str())
                .map_or(0, |(_, n)| *n as u64);
            (*s, n)
        })
        .collect()
}

pub const PING: &str = "SELECT 1 FROM jobs LIMIT 1";

/// Binds: the new lease end, id, token.
pub const RENEW: &str =
    "UPDATE jobs SET due_at = $1 WHERE id = $2 AND lease_token = $3 AND status = 'running'";

/// Binds: result, id, token.
pub const PROGRESS: &str =
    "UPDATE jobs SET result = $1 WHERE id = $2 AND lease_token = $3 AND status = 'running'";

/// Binds: status, result, error, due_at, finished_at, id, token (see
/// [`super::model::outcome_columns`]).
pub const FINISH: &str = "UPDATE jobs SET status = $1, result = $2, error = $3, due_at = $4, \
                          finished_at = $5, lease_token = NULL \
                          WHERE id = $6 AND lease_token = $7 AND status = 'running'";

/// Back to the queue without counting the attempt. Binds: due_at, id, token.
pub const RELEASE: &str = "UPDATE jobs SET status = 'queued', \
                           attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
                           due_at = $1, started_at = NULL, lease_token = NULL \
                           WHERE id = $2 AND lease_token = $3 AND status = 'running'";

/// Finished jobs past their retention. Binds: the cutoff (finished_at).
pub const PURGE_JOBS: &str =
    "DELETE FROM jobs WHERE status IN ('succeeded', 'dead') AND finished_at < $1";

/// Tick records past the cutoff. Binds: the cutoff in milliseconds.
pub const PURGE_TICKS: &str = "DELETE FROM job_ticks WHERE tick < $1";

/// The `seq` of the job due first in the first of `lanes` that has one:
/// `pick(lane)` selects one lane's due-first job. Each lane is its own
/// ordered scan of the `jobs_lane_due` index; `coalesce` looks at the next
/// lane only when the ones before it have nothing due.
pub fn due_first(lanes: &[Lane], pick: impl Fn(Lane) -> String) -> String {
    let picks: Vec<String> = lanes.iter().map(|l| format!("({})", pick(*l))).collect();
    match picks.as_slice() {
        [one] => one.clone(),
        many => format!("coalesce({})", many.join(", ")),
    }
}

/// `'ping', 'add', …`: the kinds this binary can run. Claims take only
/// these, so during a rolling upgrade older workers leave a new kind to the
/// newer ones instead of failing it.
pub fn known_kinds() -> String {
    JobKind::ALL
        .iter()
        .map(|k| format!("'{}'", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::JobStatus;

    #[test]
    fn sqlite_numbers_the_same_placeholders() {
        assert_eq!(
            Dialect::Sqlite.sql(RENEW).0,
            "UPDATE jobs SET due_at = ?1 WHERE id = ?2 AND lease_token = ?3 AND status = 'running'"
        );
        assert_eq!(Dialect::Postgres.sql(RENEW).0, RENEW);
        assert!(GET.starts_with("SELECT seq, id,"), "{GET}");
    }

    #[test]
    fn due_first_looks_in_the_lanes_in_the_order_given() {
        let pick = |l: Lane| format!("SELECT seq FROM jobs WHERE lane = '{l}'");
        assert_eq!(
            due_first(&[Lane::Internal], pick),
            "(SELECT seq FROM jobs WHERE lane = 'internal')"
        );
        assert_eq!(
            due_first(&[Lane::User, Lane::Internal], pick),
            "coalesce((SELECT seq FROM jobs WHERE lane = 'user'), \
             (SELECT seq FROM jobs WHERE lane = 'internal'))"
        );
    }

    #[test]
    fn a_list_binds_only_the_filters_it_has() {
        let q = JobListQuery {
            status: Some(JobStatus::Dead),
            kind: None,
            after: Some(9),
            limit: 10,
        };
        let sql = Dialect::Postgres.list_sql(&q);
        assert!(sql.contains("WHERE status = $1 AND seq < $2"), "{sql}");
        assert!(sql.ends_with("LIMIT $3"), "{sql}");
        let all = JobListQuery {
            status: None,
            kind: None,
            after: None,
            limit: 10,
        };
        let sql = Dialect::Sqlite.list_sql(&all);
        assert!(!sql.contains("WHERE"), "{sql}");
        assert!(sql.ends_with("LIMIT ?1"), "{sql}");
    }
}
