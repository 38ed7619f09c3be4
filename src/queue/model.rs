//! What a job is, the kinds the service knows and how their arguments are
//! checked: independent of the queue backend and of HTTP.

use std::{borrow::Cow, fmt, str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        ObjectBuilder, OneOfBuilder, Ref, RefOr, Schema, Type,
        schema::{AdditionalProperties, Discriminator},
    },
};
use uuid::Uuid;

use crate::domain::{timestamp, validation::FieldError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// Held by a worker under a lease.
    Running,
    Succeeded,
    /// The last attempt failed; another is due at `run_at`.
    Failed,
    /// Out of attempts; only `POST /jobs/{id}/retry` brings it back.
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("unknown status {s:?}: one of queued, running, succeeded, failed, dead")
            })
    }
}

/// The built-in kinds. Arguments are checked when a job is enqueued, so a
/// worker only ever sees jobs it can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Ping,
    Add,
    Reindex,
    ExtractText,
    Backup,
    Purge,
    DeliverWebhook,
    Import,
}

impl JobKind {
    pub const ALL: [JobKind; 8] = [
        Self::Ping,
        Self::Add,
        Self::Reindex,
        Self::ExtractText,
        Self::Backup,
        Self::Purge,
        Self::DeliverWebhook,
        Self::Import,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Add => "add",
            Self::Reindex => "reindex",
            Self::ExtractText => "extract_text",
            Self::Backup => "backup",
            Self::Purge => "purge",
            Self::DeliverWebhook => "deliver_webhook",
            Self::Import => "import",
        }
    }
}

impl JobKind {
    /// Kinds that act on the whole deployment: enqueued with the admin scope.
    pub fn is_maintenance(self) -> bool {
        matches!(
            self,
            Self::Reindex | Self::Backup | Self::Purge | Self::Import
        )
    }

    /// Kinds only the admin scope may enqueue: maintenance, and a webhook
    /// delivery (an admin's thing, queued by the service itself).
    pub fn needs_admin(self) -> bool {
        self.is_maintenance() || self == Self::DeliverWebhook
    }

    /// The lane a job of this kind waits in: the service's own work never
    /// queues behind what API clients submit.
    pub fn lane(self) -> Lane {
        match self {
            Self::Ping | Self::Add => Lane::User,
            Self::Reindex
            | Self::ExtractText
            | Self::Backup
            | Self::Purge
            | Self::DeliverWebhook
            | Self::Import => Lane::Internal,
        }
    }
}

/// Where a job waits. Each lane is claimed in due order on its own, and
/// workers choose which lane to look in first (`crate::jobs::worker`), so a
/// backlog in one lane never delays the other's jobs behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// The service's own work: text extraction, backups, purges, reindexing.
    Internal,
    /// What API clients submit for themselves (`ping`, `add`).
    User,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Self::Internal, Self::User];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Internal => "internal",
            Self::User => "user",
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown kind {s:?}: one of {}", known.join(", "))
            })
    }
}

/// Arguments of each kind, as a worker reads them.
#[derive(Debug, Clone, PartialEq)]
pub enum JobArgs {
    /// `delay_ms` (≤ 60 s) holds the worker that long first: a probe for
    /// worker latency, leases and shutdown behaviour.
    Ping {
        delay_ms: u64,
    },
    Add {
        x: serde_json::Number,
        y: serde_json::Number,
    },
    Reindex,
    ExtractText {
        attachment_id: Uuid,
    },
    /// `to`: a path, `file://…` or `s3://…` URL; `None` means the configured default.
    Backup {
        to: Option<String>,
    },
    Purge,
    DeliverWebhook {
        delivery_id: Uuid,
    },
    /// The zip `POST /api/v1/import` staged (`import_key(upload)`), read
    /// as `format`, `tag` added to every note.
    Import {
        upload: Uuid,
        format: Option<String>,
        tag: Option<String>,
        folder_tags: bool,
    },
}

// The arguments of each kind as they are read, and as the OpenAPI document
// states them (`JobRequest`'s schema below): one struct for both, so the
// document cannot drift from what is accepted.

/// `add`: two numbers; integers add exactly, anything else as f64.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AddArgs {
    #[schema(schema_with = json_number)]
    x: serde_json::Number,
    #[schema(schema_with = json_number)]
    y: serde_json::Number,
}

/// Any JSON number, integer or not (utoipa's f64 would say `double`).
fn json_number() -> Schema {
    ObjectBuilder::new().schema_type(Type::Number).into()
}

/// `extract_text`: the attachment whose text becomes searchable.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ExtractTextArgs {
    attachment_id: Uuid,
}

/// `deliver_webhook`: the delivery to attempt (queued by the service for
/// each event a webhook listens to).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DeliverWebhookArgs {
    delivery_id: Uuid,
}

/// `backup`: where the snapshot goes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BackupArgs {
    /// A path, `file://…` or `s3://…` URL of at most 1024 bytes, without
    /// `..` segments or backslashes, under one of the destinations the
    /// operator allows (NOTES_BACKUP_DESTINATIONS; 422 naming `args.to`
    /// otherwise). Absent or null: the configured default (NOTES_BACKUP_TO).
    #[schema(min_length = 1, max_length = 1024, pattern = r"^[^\u0000]*$")]
    to: Option<String>,
}

/// `import`: a zip `POST /api/v1/import` staged. Queued by that route;
/// a job naming an upload that is not staged fails.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ImportArgs {
    /// The staged upload's id.
    upload: Uuid,
    /// `auto` (default), `markdown`, `obsidian` or `ndjson`.
    #[schema(pattern = "^(auto|markdown|obsidian|ndjson)$")]
    format: Option<String>,
    /// A tag added to every imported note.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    tag: Option<String>,
    /// Tag each note with its folder too.
    #[serde(default)]
    folder_tags: Option<bool>,
}

/// `reindex` and `purge` take no arguments.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// `ping`: answers `"pong"`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PingArgs {
    /// Hold the worker this long first (milliseconds).
    #[serde(default)]
    #[schema(maximum = 60_000, default = 0)]
    delay_ms: u64,
}

pub const MAX_PING_DELAY_MS: u64 = 60_000;
/// The longest `ping` a key without the admin scope may submit: a probe
/// needs no more, and a minute-long one holds a worker for a minute.
pub const MAX_USER_PING_DELAY_MS: u64 = 1_000;

impl JobArgs {
    /// Checks `args` for `kind`; the errors name the fields under `args`.
    pub fn parse(kind: JobKind, args: &Value) -> Result<Self, Vec<FieldError>> {
        fn de<T: for<'de> Deserialize<'de>>(args: &Value) -> Result<T, Vec<FieldError>> {
            serde_path_to_error::deserialize(args).map_err(|e| {
                let mut err = crate::domain::validation::json_field_error(&e);
                err.field = if err.field.is_empty() {
                    "args".into()
                } else {
                    format!("args.{}", err.field)
                };
                vec![err]
            })
        }
        let args = if args.is_null() {
            &Value::Object(Default::default())
        } else {
            args
        };
        if !args.is_object() {
            return Err(vec![FieldError::new("args", "must be a JSON object")]);
        }
        Ok(match kind {
            JobKind::Ping => {
                let a = de::<PingArgs>(args)?;
                if a.delay_ms > MAX_PING_DELAY_MS {
                    return Err(vec![FieldError::new(
                        "args.delay_ms",
                        format!("must be at most {MAX_PING_DELAY_MS}"),
                    )]);
                }
                Self::Ping {
                    delay_ms: a.delay_ms,
                }
            }
            JobKind::Add => de::<AddArgs>(args).map(|a| Self::Add { x: a.x, y: a.y })?,
            JobKind::Reindex => de::<NoArgs>(args).map(|_| Self::Reindex)?,
            JobKind::ExtractText => de::<ExtractTextArgs>(args).map(|a| Self::ExtractText {
                attachment_id: a.attachment_id,
            })?,
            JobKind::Backup => {
                let a = de::<BackupArgs>(args)?;
                if let Some(to) = &a.to
                    && (to.is_empty() || to.len() > 1024 || to.contains('\0'))
                {
                    return Err(vec![FieldError::new(
                        "args.to",
                        "must be a non-empty path or URL of at most 1024 bytes",
                    )]);
                }
                Self::Backup { to: a.to }
            }
            JobKind::Purge => de::<NoArgs>(args).map(|_| Self::Purge)?,
            JobKind::DeliverWebhook => {
                de::<DeliverWebhookArgs>(args).map(|a| Self::DeliverWebhook {
                    delivery_id: a.delivery_id,
                })?
            }
            JobKind::Import => {
                let a = de::<ImportArgs>(args)?;
                if let Some(f) = &a.format
                    && !matches!(f.as_str(), "auto" | "markdown" | "obsidian" | "ndjson")
                {
                    return Err(vec![FieldError::new(
                        "args.format",
                        "must be auto, markdown, obsidian or ndjson",
                    )]);
                }
                let tag = a
                    .tag
                    .as_deref()
                    .map(crate::domain::note::normalize_tag_filter)
                    .transpose()
                    .map_err(|mut e| {
                        e.field = "args.tag".into();
                        vec![e]
                    })?;
                Self::Import {
                    upload: a.upload,
                    format: a.format,
                    tag,
                    folder_tags: a.folder_tags.unwrap_or(false),
                }
            }
        })
    }
}

/// What a client asks for: `{"kind":"add","args":{"x":2,"y":3}}`. Its
/// OpenAPI schema (below) has one shape per kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    pub kind: String,
    #[serde(default, deserialize_with = "bounded_args")]
    pub args: Value,
}

/// Job arguments are a few ids and numbers; reading stops long before a
/// large document could cost memory.
pub const MAX_ARGS_BYTES: usize = 16 * 1024;

fn bounded_args<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    crate::domain::bounded::value(d, MAX_ARGS_BYTES)
}

impl JobRequest {
    pub fn validate(self) -> Result<NewJob, Vec<FieldError>> {
        let kind = JobKind::from_str(&self.kind).map_err(|e| vec![FieldError::new("kind", e)])?;
        JobArgs::parse(kind, &self.args)?;
        let args = if self.args.is_null() {
            Value::Object(Default::default())
        } else {
            self.args
        };
        Ok(NewJob { kind, args })
    }
}

/// A kind's `args` schema, with the schemas it refers to.
struct ArgsSchema {
    name: Cow<'static, str>,
    schema: RefOr<Schema>,
    nested: Vec<(String, RefOr<Schema>)>,
}

/// The schema of a kind's `args` in a job request.
fn args_schema(kind: JobKind) -> ArgsSchema {
    fn of<T: ToSchema>() -> ArgsSchema {
        let mut nested = Vec::new();
        T::schemas(&mut nested);
        ArgsSchema {
            name: T::name(),
            schema: T::schema(),
            nested,
        }
    }
    match kind {
        JobKind::Ping => of::<PingArgs>(),
        JobKind::Add => of::<AddArgs>(),
        JobKind::Reindex | JobKind::Purge => of::<NoArgs>(),
        JobKind::ExtractText => of::<ExtractTextArgs>(),
        JobKind::Backup => of::<BackupArgs>(),
        JobKind::DeliverWebhook => of::<DeliverWebhookArgs>(),
        JobKind::Import => of::<ImportArgs>(),
    }
}

impl JobKind {
    /// What the kind does, for the OpenAPI document.
    fn summary(self) -> &'static str {
        match self {
            Self::Ping => "Answers `\"pong\"`: a probe of the workers.",
            Self::Add => "Adds `x` and `y`.",
            Self::Reindex => {
                "Rebuilds the search index from the database (admin scope); \
                 queues text extraction that never ran."
            }
            Self::ExtractText => {
                "Makes a text-like attachment's text searchable (queued by \
                 the server after each upload)."
            }
            Self::Backup => "Snapshots the database records and attachment objects (admin scope).",
            Self::Purge => {
                "Removes orphaned attachment objects and finished jobs past \
                 their retention (admin scope)."
            }
            Self::DeliverWebhook => {
                "Attempts a webhook delivery that is due (queued by the \
                 server for each event; admin scope)."
            }
            Self::Import => {
                "Imports a zip staged by `POST /api/v1/import` (admin scope; \
                 that route queues it); reports its progress in `result`."
            }
        }
    }

    /// `extract_text` → `ExtractTextJobRequest`.
    fn request_schema_name(self) -> String {
        let camel: String = self
            .as_str()
            .split('_')
            .map(|word| {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        format!("{camel}JobRequest")
    }

    /// Whether `args` may be left out (or null): when `{}` is valid for it.
    fn args_optional(self) -> bool {
        JobArgs::parse(self, &Value::Object(Default::default())).is_ok()
    }
}

/// The request shape of one kind: `kind` fixed to its name, `args` its own.
fn request_schema(kind: JobKind) -> Schema {
    let args = RefOr::Ref(Ref::from_schema_name(args_schema(kind).name));
    // `const` is JSON Schema's word for "exactly this value"; utoipa's
    // `Object` has no field for it, and its extensions serialize as they are.
    let kind_schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .extensions(Some(
            [("const", Value::from(kind.as_str()))]
                .into_iter()
                .collect(),
        ));
    let mut schema = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(kind.summary()))
        .property("kind", kind_schema)
        .required("kind")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    schema = if kind.args_optional() {
        schema.property(
            "args",
            OneOfBuilder::new()
                .item(args)
                .item(ObjectBuilder::new().schema_type(Type::Null)),
        )
    } else {
        schema.property("args", args).required("args")
    };
    schema.into()
}

impl PartialSchema for JobRequest {
    fn schema() -> RefOr<Schema> {
        let names: Vec<String> = JobKind::ALL
            .iter()
            .map(|k| k.request_schema_name())
            .collect();
        let mapping = JobKind::ALL
            .iter()
            .zip(&names)
            .map(|(kind, name)| (kind.as_str(), format!("#/components/schemas/{name}")));
        names
            .iter()
            .fold(OneOfBuilder::new(), |one_of, name| {
                one_of.item(Ref::from_schema_name(name))
            })
            .description(Some(
                "A job to enqueue: `{\"kind\":\"add\",\"args\":{\"x\":2,\"y\":3}}`. One \
                 shape per kind, told apart by `kind`; absent or null `args` mean `{}`.",
            ))
            .discriminator(Some(Discriminator::with_mapping("kind", mapping)))
            .into()
    }
}

impl ToSchema for JobRequest {
    fn name() -> Cow<'static, str> {
        "JobRequest".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        for kind in JobKind::ALL {
            let args = args_schema(kind);
            if !schemas.iter().any(|(name, _)| *name == args.name) {
                schemas.push((args.name.into_owned(), args.schema));
                schemas.extend(args.nested);
            }
            schemas.push((kind.request_schema_name(), request_schema(kind).into()));
        }
    }
}

/// A validated job, ready to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub kind: JobKind,
    pub args: Value,
}

impl NewJob {
    pub fn new(kind: JobKind, args: Value) -> Self {
        Self { kind, args }
    }

    /// Why only the admin scope may enqueue this job, if it may not be
    /// enqueued with write: maintenance kinds act on the whole deployment,
    /// and a long `ping` holds a worker for as long as it asks.
    pub fn admin_only(&self) -> Option<String> {
        if self.kind.needs_admin() {
            return Some(format!("a {} job needs the 'admin' scope", self.kind));
        }
        let delay = self.args.get("delay_ms").and_then(Value::as_u64);
        (self.kind == JobKind::Ping && delay.is_some_and(|d| d > MAX_USER_PING_DELAY_MS)).then(
            || format!("a ping longer than {MAX_USER_PING_DELAY_MS} ms needs the 'admin' scope"),
        )
    }
}

/// A submitter's share of the queue: at most `limit` of the jobs enqueued
/// for `owner` may be waiting (queued, or failed with a retry due) or
/// running at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub owner: Uuid,
    pub limit: u32,
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub id: Uuid,
    pub kind: JobKind,
    #[schema(value_type = Object)]
    pub args: Value,
    pub status: JobStatus,
    pub attempts: u32,
    pub max_attempts: u32,
    #[schema(value_type = crate::domain::json_shape::AnyJson)]
    pub result: Option<Value>,
    pub error: Option<String>,
    #[serde(with = "timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "timestamp::option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "timestamp::option")]
    pub finished_at: Option<DateTime<Utc>>,
    /// When a queued or failed job may run next.
    #[serde(
        with = "timestamp::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub run_at: Option<DateTime<Utc>>,
}

impl Job {
    /// A fresh record for `new`, not yet stored.
    pub fn queued(new: NewJob, max_attempts: u32, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: new.kind,
            args: new.args,
            status: JobStatus::Queued,
            attempts: 0,
            max_attempts,
            result: None,
            error: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            run_at: Some(now),
        }
    }
}

/// A job a worker holds: the record and the lease that proves it holds it.
/// Every state change a worker makes names the token, so a worker whose
/// lease expired (and whose job went to another worker) changes nothing.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub job: Job,
    pub token: Uuid,
}

/// How a finished attempt ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded(Value),
    /// Failed, with another attempt due at the given time.
    Retry {
        error: String,
        at: DateTime<Utc>,
    },
    Dead(String),
}

impl Outcome {
    pub fn status(&self) -> JobStatus {
        match self {
            Self::Succeeded(_) => JobStatus::Succeeded,
            Self::Retry { .. } => JobStatus::Failed,
            Self::Dead(_) => JobStatus::Dead,
        }
    }

    /// The job waits in the queue again (for a later attempt): every backend
    /// wakes its workers then, as it does on an enqueue.
    pub fn requeues(&self) -> bool {
        matches!(self, Self::Retry { .. })
    }
}

/// Exponential backoff with full jitter in its upper half: attempt n waits
/// between base·2^(n-1)/2 and base·2^(n-1), capped, so retries of many jobs
/// that failed together spread out instead of returning in lockstep.
pub fn backoff(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(cap);
    let half = exp / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

/// After a failed attempt: retry later, or dead when out of attempts.
pub fn after_failure(
    job: &Job,
    error: String,
    base: Duration,
    cap: Duration,
    now: DateTime<Utc>,
) -> Outcome {
    if job.attempts >= job.max_attempts {
        Outcome::Dead(error)
    } else {
        let wait = backoff(base, cap, job.attempts);
        Outcome::Retry {
            error,
            at: now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX),
        }
    }
}

/// Filters and page of `GET /jobs`.
#[derive(Debug, Clone, Default)]
pub struct JobListQuery {
    pub status: Option<JobStatus>,
    pub kind: Option<JobKind>,
    pub limit: u32,
    /// Continue strictly after this position (a previous page's `next`).
    pub after: Option<i64>,
}

pub type JobPage = crate::store::Page<Job>;

/// Milliseconds since the epoch: how queues order due times.
pub fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The public `run_at` of a stored due time: only waiting jobs have one (a
/// running job's due time is its lease, an internal matter).
pub fn run_at(status: JobStatus, due_at: i64) -> Option<DateTime<Utc>> {
    matches!(status, JobStatus::Queued | JobStatus::Failed)
        .then(|| DateTime::from_timestamp_millis(due_at))
        .flatten()
}

/// What a backend stores for an outcome: (result, error, due_at).
pub fn outcome_columns(
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> (Option<&Value>, Option<&str>, i64) {
    match outcome {
        Outcome::Succeeded(v) => (Some(v), None, millis(now)),
        Outcome::Retry { error, at } => (None, Some(error), millis(*at)),
        Outcome::Dead(error) => (None, Some(error), millis(now)),
    }
}

/// Why `retry` changed nothing: no such job, or it is not dead.
pub fn not_retryable(job: Option<Job>) -> super::QueueError {
    match job {
        None => super::QueueError::NotFound,
        Some(job) => super::QueueError::Conflict(format!(
            "job {} is {}; only dead jobs can be retried",
            job.id, job.status
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validate(v: Value) -> Result<NewJob, Vec<FieldError>> {
        serde_json::from_value::<JobRequest>(v).unwrap().validate()
    }

    #[test]
    fn known_kinds_with_good_args_validate() {
        assert_eq!(
            validate(json!({"kind":"ping"})).unwrap().kind,
            JobKind::Ping
        );
        assert_eq!(
            validate(json!({"kind":"add","args":{"x":2,"y":3}}))
                .unwrap()
                .kind,
            JobKind::Add
        );
        let id = Uuid::now_v7();
        let job = validate(json!({"kind":"extract_text","args":{"attachment_id": id}})).unwrap();
        assert_eq!(
            JobArgs::parse(job.kind, &job.args).unwrap(),
            JobArgs::ExtractText { attachment_id: id }
        );
        assert_eq!(
            validate(json!({"kind":"backup","args":{}})).unwrap().kind,
            JobKind::Backup
        );
    }

    #[test]
    fn bad_kind_or_args_name_the_field() {
        let field = |v| validate(v).unwrap_err()[0].field.clone();
        assert_eq!(field(json!({"kind":"rm -rf /"})), "kind");
        assert_eq!(
            field(json!({"kind":"add","args":{"x":"2","y":3}})),
            "args.x"
        );
        assert_eq!(field(json!({"kind":"add","args":{"x":2}})), "args.y");
        assert_eq!(field(json!({"kind":"add","args":[1,2]})), "args");
        assert_eq!(
            field(json!({"kind":"ping","args":{"extra":1}})),
            "args.extra"
        );
        assert_eq!(
            field(json!({"kind":"extract_text","args":{"attachment_id":"../x"}})),
            "args.attachment_id"
        );
        assert_eq!(field(json!({"kind":"backup","args":{"to":""}})), "args.to");
    }

    #[test]
    fn maintenance_kinds_and_long_pings_are_admin_only() {
        let admin_only = |v| validate(v).unwrap().admin_only();
        assert_eq!(admin_only(json!({"kind":"ping"})), None);
        assert_eq!(
            admin_only(json!({"kind":"ping","args":{"delay_ms": MAX_USER_PING_DELAY_MS}})),
            None
        );
        let long =
            admin_only(json!({"kind":"ping","args":{"delay_ms": MAX_USER_PING_DELAY_MS + 1}}));
        assert!(long.unwrap().contains("longer than 1000 ms"));
        assert_eq!(admin_only(json!({"kind":"add","args":{"x":1,"y":2}})), None);
        for kind in ["backup", "purge", "reindex"] {
            let why = admin_only(json!({"kind": kind})).expect(kind);
            assert!(why.contains(kind), "{why}");
        }
        let delivery = json!({"kind": "deliver_webhook", "args": {"delivery_id": Uuid::nil()}});
        let why = admin_only(delivery).expect("deliver_webhook");
        assert!(why.contains("deliver_webhook"), "{why}");
    }

    #[test]
    fn the_services_own_kinds_wait_in_the_internal_lane() {
        for kind in JobKind::ALL {
            let internal = matches!(
                kind,
                JobKind::ExtractText
                    | JobKind::Backup
                    | JobKind::Purge
                    | JobKind::Reindex
                    | JobKind::DeliverWebhook
                    | JobKind::Import
            );
            assert_eq!(kind.lane() == Lane::Internal, internal, "{kind}");
        }
    }

    #[test]
    fn backoff_grows_and_stays_within_its_band() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(10);
        for attempt in 1..=10 {
            let full = base.saturating_mul(1 << (attempt - 1)).min(cap);
            for _ in 0..50 {
                let d = backoff(base, cap, attempt);
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt}: {d:?} not in [{:?}, {full:?}]",
                    full / 2
                );
            }
        }
        assert!(backoff(base, cap, 4) > backoff(base, cap, 1));
        assert_eq!(backoff(base, cap, 1000).max(cap), cap);
    }

    #[test]
    fn last_attempt_failing_is_dead() {
        let mut job = Job::queued(NewJob::new(JobKind::Ping, json!({})), 3, Utc::now());
        job.attempts = 2;
        let d = Duration::from_millis(10);
        assert_eq!(
            after_failure(&job, "x".into(), d, d, Utc::now()).status(),
            JobStatus::Failed
        );
        job.attempts = 3;
        assert_eq!(
            after_failure(&job, "x".into(), d, d, Utc::now()),
            Outcome::Dead("x".into())
        );
    }

    #[test]
    fn status_and_kind_round_trip_their_names() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for k in JobKind::ALL {
            assert_eq!(k.as_str().parse::<JobKind>().unwrap(), k);
        }
    }

    /// A value of each schema, as a client built from the document would
    /// send it: every required property, of its type.
    fn instance(schema: &Value, schemas: &Value) -> Value {
        if let Some(name) = schema["$ref"].as_str() {
            let name = name.trim_start_matches("#/components/schemas/");
            return instance(&schemas[name], schemas);
        }
        match schema["type"].as_str() {
            Some("object") => {
                let mut out = serde_json::Map::new();
                for name in schema["required"].as_array().into_iter().flatten() {
                    let name = name.as_str().unwrap();
                    out.insert(name.into(), instance(&schema["properties"][name], schemas));
                }
                Value::Object(out)
            }
            Some("string") if schema["const"].is_string() => schema["const"].clone(),
            Some("string") if schema["format"] == "uuid" => json!(Uuid::now_v7()),
            Some("string") => json!("x"),
            Some("number") => json!(2.5),
            Some("integer") => json!(7),
            other => panic!("no instance for {other:?}: {schema}"),
        }
    }

    /// The document's shape of each kind is what validation accepts: a
    /// request built from the schema alone is valid, leaving out what it
    /// requires or adding what it does not name is refused, and `args` may
    /// be left out exactly where the schema says so.
    #[test]
    fn the_schema_of_each_kind_matches_its_validation() {
        let mut named = Vec::new();
        JobRequest::schemas(&mut named);
        let schemas: Value = named
            .into_iter()
            .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap()))
            .collect::<serde_json::Map<_, _>>()
            .into();
        let request = serde_json::to_value(JobRequest::schema()).unwrap();
        let mapping = &request["discriminator"]["mapping"];
        assert_eq!(request["discriminator"]["propertyName"], "kind");
        assert_eq!(
            request["oneOf"].as_array().unwrap().len(),
            JobKind::ALL.len()
        );
        for kind in JobKind::ALL {
            let reference = mapping[kind.as_str()].as_str().unwrap();
            assert!(
                request["oneOf"]
                    .as_array()
                    .unwrap()
                    .contains(&json!({ "$ref": reference })),
                "{kind} is not one of the request's shapes"
            );
            let variant = instance(&json!({ "$ref": reference }), &schemas);
            let variant_schema = &schemas[reference.trim_start_matches("#/components/schemas/")];
            assert_eq!(variant_schema["additionalProperties"], false, "{kind}");
            let args_schema = &variant_schema["properties"]["args"];
            let args_ref = args_schema["$ref"]
                .as_str()
                .or(args_schema["oneOf"][0]["$ref"].as_str())
                .unwrap();
            let args_schema = &schemas[args_ref.trim_start_matches("#/components/schemas/")];
            let args = instance(args_schema, &schemas);
            let full = json!({ "kind": kind.as_str(), "args": args.clone() });
            assert!(validate(full).is_ok(), "{kind}: {args}");

            let args_required = variant_schema["required"]
                .as_array()
                .unwrap()
                .contains(&json!("args"));
            assert!(validate(variant).is_ok(), "{kind}");
            let kind_only = validate(json!({ "kind": kind.as_str() }));
            assert_eq!(kind_only.is_ok(), !args_required, "{kind}");
            if !args_required {
                assert!(validate(json!({ "kind": kind.as_str(), "args": null })).is_ok());
            }

            assert_eq!(args_schema["additionalProperties"], false, "{kind}");
            let mut extra = args.clone();
            extra["not_an_argument"] = json!(1);
            assert!(
                validate(json!({ "kind": kind.as_str(), "args": extra })).is_err(),
                "{kind} accepts an argument its schema does not name"
            );
            for name in args_schema["required"].as_array().into_iter().flatten() {
                let mut missing = args.clone();
                missing
                    .as_object_mut()
                    .unwrap()
                    .remove(name.as_str().unwrap());
                let errors =
                    validate(json!({ "kind": kind.as_str(), "args": missing })).unwrap_err();
                assert_eq!(errors[0].field, format!("args.{}", name.as_str().unwrap()));
            }
        }
    }

    #[test]
    fn the_schema_states_the_bounds_validation_applies() {
        let schema = |v: Value| validate(json!({ "kind": "ping", "args": v }));
        let mut named = Vec::new();
        JobRequest::schemas(&mut named);
        let ping = named.iter().find(|(n, _)| n == "PingArgs").unwrap();
        let ping = serde_json::to_value(&ping.1).unwrap();
        let max = ping["properties"]["delay_ms"]["maximum"].as_u64().unwrap();
        assert_eq!(max, MAX_PING_DELAY_MS);
        assert!(schema(json!({ "delay_ms": max })).is_ok());
        assert!(schema(json!({ "delay_ms": max + 1 })).is_err());
        assert!(schema(json!({ "delay_ms": -1 })).is_err());
    }
}
