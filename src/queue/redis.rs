//! The queue in Redis (`NOTES_QUEUE_URL=redis://…`): what Celery users ran.
//!
//! Every state change is one Lua script, so it is atomic on the server: a
//! claim moves the job due first from "due" to "running" and hands out a
//! lease token in one step, whatever the number of workers. Layout, under a
//! prefix (`?prefix=` on the URL, default `notes`):
//!
//! - `P:job:<id>`: hash of the record (args and result as JSON text, never
//!   decoded by Lua, so numbers keep their precision);
//! - `P:due` (the user lane) and `P:due:internal` (the internal lane):
//!   sorted sets by due time in ms (queued and failed jobs by when they may
//!   run, running jobs by when their lease ends); a job's hash names its
//!   `lane`, and a job without one (queued before lanes existed) is in the
//!   user lane;
//! - `P:owner:<key id>`: the jobs an API key submitted that are still
//!   queued, failed or running, for the per-key cap;
//! - `P:all`, `P:status:<status>`, `P:kind:<kind>`: sorted sets by position,
//!   for listing newest first;
//! - `P:finished`: succeeded and dead jobs by when they finished, for purge;
//! - `P:tick:<name>:<ms>`: one key per fired schedule tick (SET NX, with a
//!   TTL as a backstop), and `P:ticks`, those keys by tick time, for purge.
//!
//! Enqueues PUBLISH on `P:wake`; idle workers subscribe instead of polling.

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use redis::{AsyncCommands, Script, aio::ConnectionManager};
use serde_json::Value;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{
    Claimed, Job, JobListQuery, JobPage, JobStatus, Lane, Outcome, Queue, QueueError, Quota,
    Wakeup,
    model::millis,
    stored::{IntoJob, TextJob, corrupt},
};
use crate::{domain::timestamp, store::Page};

/// How long a tick's marker lives: far longer than any grace period.
const TICK_TTL_SECS: u64 = 14 * 24 * 3600;
/// Jobs scanned per round trip when listing with filters.
const SCAN_BATCH: isize = 200;

pub struct RedisQueue {
    conn: ConnectionManager,
    prefix: String,
    wake: Wakeup,
    listener: JoinHandle<()>,
    scripts: Scripts,
}

struct Scripts {
    enqueue: Script,
    enqueue_within: Script,
    claim: Script,
    renew: Script,
    progress: Script,
    finish: Script,
    release: Script,
    retry: Script,
    purge: Script,
}

// Shared by the scripts.
// create's ARGV: prefix, id, kind, args, status, attempts, max_attempts,
// created_at, due_at, lane, owner ('' for none).
const CREATE: &str = r"
-- The due set of a lane; the user lane keeps the name of the one set there
-- was before lanes, so jobs queued then still run.
local function due(p, lane)
  if lane and lane ~= 'user' then return p .. ':due:' .. lane end
  return p .. ':due'
end
local function due_of(p, key)
  return due(p, redis.call('HGET', key, 'lane'))
end
local function create(a)
  local p = a[1]
  local seq = redis.call('INCR', p .. ':seq')
  local key = p .. ':job:' .. a[2]
  redis.call('HSET', key, 'id', a[2], 'seq', seq, 'kind', a[3], 'args', a[4],
    'status', a[5], 'attempts', a[6], 'max_attempts', a[7], 'created_at', a[8], 'due_at', a[9],
    'lane', a[10])
  if a[11] ~= '' then
    redis.call('HSET', key, 'owner', a[11])
    redis.call('SADD', p .. ':owner:' .. a[11], a[2])
  end
  redis.call('ZADD', due(p, a[10]), a[9], a[2])
  redis.call('ZADD', p .. ':all', seq, a[2])
  redis.call('ZADD', p .. ':status:' .. a[5], seq, a[2])
  redis.call('ZADD', p .. ':kind:' .. a[3], seq, a[2])
  redis.call('PUBLISH', p .. ':wake', '')
  return seq
end
-- A job that will not run again leaves its owner's count.
local function settled(p, id, key)
  local owner = redis.call('HGET', key, 'owner')
  if owner then redis.call('SREM', p .. ':owner:' .. owner, id) end
end
-- Moves a job between status sets and records the new status.
local function set_status(p, id, key, status)
  local old = redis.call('HGET', key, 'status')
  local seq = redis.call('HGET', key, 'seq')
  if old then redis.call('ZREM', p .. ':status:' .. old, id) end
  redis.call('ZADD', p .. ':status:' .. status, seq, id)
  redis.call('HSET', key, 'status', status)
end
";

fn script(body: &str) -> Script {
    Script::new(&format!("{CREATE}\n{body}"))
}

impl Scripts {
    fn new() -> Self {
        Self {
            // ARGV as `create` (owner ''), then optional tick key, its TTL,
            // its time in ms.
            enqueue: script(
                r"
if ARGV[12] then
  if redis.call('SET', ARGV[12], ARGV[2], 'NX', 'EX', ARGV[13]) == false then return 0 end
  redis.call('ZADD', ARGV[1] .. ':ticks', ARGV[14], ARGV[12])
end
return create(ARGV)",
            ),
            // ARGV as `create`, then the owner's limit. Returns the
            // position, or -1 when the owner is at its limit.
            enqueue_within: script(
                r"
local p, owner, limit = ARGV[1], ARGV[11], tonumber(ARGV[12])
local set = p .. ':owner:' .. owner
if redis.call('SCARD', set) >= limit then
  -- Forget members whose record is gone (evicted, deleted by hand) or
  -- finished, so a lost record never holds a key at its limit. Only at the
  -- limit, over at most `limit` members and what was lost.
  for _, id in ipairs(redis.call('SMEMBERS', set)) do
    local status = redis.call('HGET', p .. ':job:' .. id, 'status')
    if not status or status == 'succeeded' or status == 'dead' then
      redis.call('SREM', set, id)
    end
  end
  if redis.call('SCARD', set) >= limit then return -1 end
end
return create(ARGV)",
            ),
            // ARGV: prefix, now_ms, lease_until_ms, token, started_at, then
            // the lanes to look in, in order.
            claim: script(
                r"
local p = ARGV[1]
local id, key, set
-- Skip ids whose record is gone (evicted, deleted by hand): never let one
-- block the queue.
for l = 6, #ARGV do
  set = due(p, ARGV[l])
  for _ = 1, 100 do
    local first = redis.call('ZRANGEBYSCORE', set, '-inf', ARGV[2], 'LIMIT', 0, 1)
    if #first == 0 then break end
    id = first[1]
    key = p .. ':job:' .. id
    if redis.call('EXISTS', key) == 1 then break end
    redis.call('ZREM', set, id)
    id = nil
  end
  if id then break end
end
if not id then return false end
set_status(p, id, key, 'running')
redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'token', ARGV[4], 'started_at', ARGV[5], 'due_at', ARGV[3])
redis.call('HDEL', key, 'finished_at')
redis.call('ZADD', set, ARGV[3], id)
return redis.call('HGETALL', key)",
            ),
            // ARGV: prefix, id, token, lease_until_ms
            renew: script(
                r"
local key = ARGV[1] .. ':job:' .. ARGV[2]
if redis.call('HGET', key, 'token') ~= ARGV[3] then return 0 end
redis.call('HSET', key, 'due_at', ARGV[4])
redis.call('ZADD', due_of(ARGV[1], key), ARGV[4], ARGV[2])
return 1",
            ),
            // ARGV: prefix, id, token, result
            progress: script(
                r"
local key = ARGV[1] .. ':job:' .. ARGV[2]
if redis.call('HGET', key, 'token') ~= ARGV[3] then return 0 end
redis.call('HSET', key, 'result', ARGV[4])
return 1",
            ),
            // ARGV: prefix, id, token, status, result|'', error|'', due_ms, finished_at, finished_ms
            finish: script(
                r"
local p, id = ARGV[1], ARGV[2]
local key = p .. ':job:' .. id
if redis.call('HGET', key, 'token') ~= ARGV[3] then return 0 end
set_status(p, id, key, ARGV[4])
redis.call('HDEL', key, 'token', 'result', 'error')
if ARGV[5] ~= '' then redis.call('HSET', key, 'result', ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSET', key, 'error', ARGV[6]) end
redis.call('HSET', key, 'due_at', ARGV[7], 'finished_at', ARGV[8], 'finished_ms', ARGV[9])
if ARGV[4] == 'failed' then
  redis.call('ZADD', due_of(p, key), ARGV[7], id)
  redis.call('PUBLISH', p .. ':wake', '')
else
  redis.call('ZREM', due_of(p, key), id)
  redis.call('ZADD', p .. ':finished', ARGV[9], id)
  settled(p, id, key)
end
return 1",
            ),
            // ARGV: prefix, id, token, now_ms
            release: script(
                r"
local p, id = ARGV[1], ARGV[2]
local key = p .. ':job:' .. id
if redis.call('HGET', key, 'token') ~= ARGV[3] then return 0 end
set_status(p, id, key, 'queued')
if tonumber(redis.call('HGET', key, 'attempts')) > 0 then redis.call('HINCRBY', key, 'attempts', -1) end
redis.call('HDEL', key, 'token', 'started_at')
redis.call('HSET', key, 'due_at', ARGV[4])
redis.call('ZADD', due_of(p, key), ARGV[4], id)
redis.call('PUBLISH', p .. ':wake', '')
return 1",
            ),
            // ARGV: prefix, id, now_ms. Returns the status when not dead, false when missing.
            retry: script(
                r"
local p, id = ARGV[1], ARGV[2]
local key = p .. ':job:' .. id
local status = redis.call('HGET', key, 'status')
if not status then return false end
if status ~= 'dead' then return status end
set_status(p, id, key, 'queued')
redis.call('ZREM', p .. ':finished', id)
redis.call('HDEL', key, 'token', 'result', 'error', 'started_at', 'finished_at', 'finished_ms')
redis.call('HSET', key, 'attempts', 0, 'due_at', ARGV[3])
redis.call('ZADD', due_of(p, key), ARGV[3], id)
local owner = redis.call('HGET', key, 'owner')
if owner then redis.call('SADD', p .. ':owner:' .. owner, id) end
redis.call('PUBLISH', p .. ':wake', '')
return 'retried'",
            ),
            // ARGV: prefix, before_ms, batch. Deletes up to `batch` jobs
            // finished before `before_ms` (oldest first), and up to `batch`
            // tick markers of ticks before it. Returns both counts.
            purge: script(
                r"
local p = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', p .. ':finished', '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  local key = p .. ':job:' .. id
  local status = redis.call('HGET', key, 'status')
  local kind = redis.call('HGET', key, 'kind')
  settled(p, id, key)
  if status then redis.call('ZREM', p .. ':status:' .. status, id) end
  if kind then redis.call('ZREM', p .. ':kind:' .. kind, id) end
  redis.call('ZREM', p .. ':all', id)
  redis.call('ZREM', p .. ':finished', id)
  redis.call('DEL', key)
end
local ticks = redis.call('ZRANGEBYSCORE', p .. ':ticks', '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, tick in ipairs(ticks) do
  redis.call('DEL', tick)
  redis.call('ZREM', p .. ':ticks', tick)
end
return {#ids, #ticks}",
            ),
        }
    }
}

fn unavailable(e: redis::RedisError) -> QueueError {
    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_connection_refusal() {
        QueueError::Unavailable(e.into())
    } else {
        QueueError::Internal(e.into())
    }
}

/// `redis://…[?prefix=P]` → the URL for the client and the key prefix.
fn split_prefix(url: &str) -> (String, String) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), "notes".to_owned());
    };
    let mut prefix = "notes".to_owned();
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("prefix=") {
            Some(p) if !p.is_empty() => {
                prefix = p.to_owned();
                false
            }
            _ => true,
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, prefix)
}

impl RedisQueue {
    pub async fn connect(url: &str) -> Result<Self, QueueError> {
        let (url, prefix) = split_prefix(url);
        let client =
            redis::Client::open(url.as_str()).map_err(|e| QueueError::Internal(e.into()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2);
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(unavailable)?;
        let wake = Wakeup::default();
        let listener = tokio::spawn(listen(client, format!("{prefix}:wake"), wake.clone()));
        Ok(Self {
            conn,
            prefix,
            wake,
            listener,
            scripts: Scripts::new(),
        })
    }

    fn key(&self, id: Uuid) -> String {
        format!("{}:job:{id}", self.prefix)
    }

    async fn fetch(&self, ids: &[String]) -> Result<Vec<Job>, QueueError> {
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(format!("{}:job:{id}", self.prefix));
        }
        let maps: Vec<HashMap<String, String>> = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        // A job purged between the index read and this read is skipped.
        maps.into_iter()
            .filter(|m| !m.is_empty())
            .map(|m| from_hash(m).map(|(_, j)| j))
            .collect()
    }
}

/// Wakes this process's workers when a job is announced. Losing the
/// subscription costs latency only (workers also poll).
async fn listen(client: redis::Client, channel: String, wake: Wakeup) {
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(&channel).await.is_ok() {
                    let mut messages = pubsub.on_message();
                    while messages.next().await.is_some() {
                        wake.one();
                    }
                }
                wake.one();
            }
            Err(e) => tracing::debug!(error = %e, "job wake-up subscription failed; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn from_hash(mut m: HashMap<String, String>) -> Result<(i64, Job), QueueError> {
    let mut take = |k: &str| m.remove(k).filter(|v| !v.is_empty());
    let num = |v: Option<String>, what: &str| -> Result<i64, QueueError> {
        v.as_deref()
            .unwrap_or("0")
            .parse()
            .map_err(|e| corrupt(what, e))
    };
    TextJob {
        seq: num(take("seq"), "seq")?,
        id: take("id").unwrap_or_default(),
        kind: take("kind").unwrap_or_default(),
        args: take("args").unwrap_or_default(),
        status: take("status").unwrap_or_default(),
        attempts: num(take("attempts"), "attempts")?,
        max_attempts: num(take("max_attempts"), "max_attempts")?,
        result: take("result"),
        error: take("error"),
        created_at: take("created_at").unwrap_or_default(),
        started_at: take("started_at"),
        finished_at: take("finished_at"),
        due_at: num(take("due_at"), "due_at")?,
    }
    .into_job()
}

/// A Lua reply of HGETALL: alternating field names and values.
fn pairs(flat: Vec<String>) -> HashMap<String, String> {
    let mut it = flat.into_iter();
    let mut m = HashMap::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        m.insert(k, v);
    }
    m
}

#[async_trait]
impl Queue for RedisQueue {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), QueueError> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn close(&self) {
        self.listener.abort();
    }

    async fn enqueue(&self, job: Job) -> Result<Job, QueueError> {
        self.enqueue_inner(&job, None).await?;
        Ok(job)
    }

    async fn enqueue_within(&self, job: Job, quota: Quota) -> Result<Option<Job>, QueueError> {
        let mut call = self.scripts.enqueue_within.prepare_invoke();
        self.create_args(&mut call, &job, Some(quota.owner));
        call.arg(quota.limit);
        let seq: i64 = call
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok((seq > 0).then_some(job))
    }

    async fn get(&self, id: Uuid) -> Result<Option<Job>, QueueError> {
        let m: HashMap<String, String> = self
            .conn
            .clone()
            .hgetall(self.key(id))
            .await
            .map_err(unavailable)?;
        if m.is_empty() {
            return Ok(None);
        }
        from_hash(m).map(|(_, j)| Some(j))
    }

    async fn list(&self, q: &JobListQuery) -> Result<JobPage, QueueError> {
        // Walk the narrowest index newest first, filtering by the other field.
        let set = match (q.status, q.kind) {
            (Some(s), _) => format!("{}:status:{s}", self.prefix),
            (None, Some(k)) => format!("{}:kind:{k}", self.prefix),
            (None, None) => format!("{}:all", self.prefix),
        };
        let want = q.limit as usize + 1;
        let mut rows: Vec<(i64, Job)> = Vec::new();
        let mut max = q
            .after
            .map(|a| format!("({a}"))
            .unwrap_or_else(|| "+inf".into());
        loop {
            let batch: Vec<(String, i64)> = self
                .conn
                .clone()
                .zrevrangebyscore_limit_withscores(&set, &max, "-inf", 0, SCAN_BATCH)
                .await
                .map_err(unavailable)?;
            let Some((_, last)) = batch.last() else { break };
            max = format!("({last}");
            let ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
            let seqs: HashMap<Uuid, i64> = batch
                .iter()
                .filter_map(|(id, s)| Uuid::parse_str(id).ok().map(|u| (u, *s)))
                .collect();
            for job in self.fetch(&ids).await? {
                if q.kind.is_some_and(|k| k != job.kind)
                    || q.status.is_some_and(|s| s != job.status)
                {
                    continue;
                }
                rows.push((seqs.get(&job.id).copied().unwrap_or_default(), job));
                if rows.len() == want {
                    break;
                }
            }
            if rows.len() == want || batch.len() < SCAN_BATCH as usize {
                break;
            }
        }
        Ok(Page::from_rows(rows, q.limit as usize))
    }

    async fn retry(&self, id: Uuid, now: DateTime<Utc>) -> Result<Job, QueueError> {
        let status: Option<String> = self
            .scripts
            .retry
            .arg(&self.prefix)
            .arg(id.to_string())
            .arg(millis(now))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        match status.as_deref() {
            Some("retried") => self.get(id).await?.ok_or(QueueError::NotFound),
            _ => Err(super::model::not_retryable(self.get(id).await?)),
        }
    }

    async fn queued(&self) -> Result<u64, QueueError> {
        let (a, b): (u64, u64) = redis::pipe()
            .zcard(format!("{}:status:queued", self.prefix))
            .zcard(format!("{}:status:failed", self.prefix))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(a + b)
    }

    async fn depth(&self) -> Result<Vec<(JobStatus, u64)>, QueueError> {
        let mut pipe = redis::pipe();
        for status in JobStatus::ALL {
            pipe.zcard(format!("{}:status:{}", self.prefix, status.as_str()));
        }
        let counts: Vec<u64> = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(JobStatus::ALL.into_iter().zip(counts).collect())
    }

    async fn claim(
        &self,
        lanes: &[Lane],
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Claimed>, QueueError> {
        if lanes.is_empty() {
            return Ok(None);
        }
        let token = Uuid::new_v4();
        let mut call = self.scripts.claim.prepare_invoke();
        call.arg(&self.prefix)
            .arg(millis(now))
            .arg(millis(now) + lease.as_millis() as i64)
            .arg(token.to_string())
            .arg(timestamp::format(&now));
        for lane in lanes {
            call.arg(lane.as_str());
        }
        let reply: Option<Vec<String>> = call
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let Some(flat) = reply else { return Ok(None) };
        let fields = pairs(flat);
        let id = fields.get("id").and_then(|id| Uuid::parse_str(id).ok());
        match from_hash(fields) {
            Ok((_, job)) => Ok(Some(Claimed { job, token })),
            Err(e) => {
                // A record this binary cannot read (a kind from a newer
                // version): park it as dead rather than let it cycle.
                if let Some(id) = id {
                    let outcome =
                        Outcome::Dead(format!("this worker cannot run it: {}", e.brief()));
                    let _ = self.finish(id, token, &outcome, now).await;
                }
                Err(e)
            }
        }
    }

    async fn renew(
        &self,
        id: Uuid,
        token: Uuid,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, QueueError> {
        let n: i64 = self
            .scripts
            .renew
            .arg(&self.prefix)
            .arg(id.to_string())
            .arg(token.to_string())
            .arg(millis(now) + lease.as_millis() as i64)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(n == 1)
    }

    async fn progress(&self, id: Uuid, token: Uuid, result: &Value) -> Result<bool, QueueError> {
        let n: i64 = self
            .scripts
            .progress
            .arg(&self.prefix)
            .arg(id.to_string())
            .arg(token.to_string())
            .arg(result.to_string())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(n == 1)
    }

    async fn finish(
        &self,
        id: Uuid,
        token: Uuid,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) -> Result<bool, QueueError> {
        let (result, error, due) = super::model::outcome_columns(outcome, now);
        let n: i64 = self
            .scripts
            .finish
            .arg(&self.prefix)
            .arg(id.to_string())
            .arg(token.to_string())
            .arg(outcome.status().as_str())
            .arg(result.map(|r| r.to_string()).unwrap_or_default())
            .arg(error.unwrap_or_default())
            .arg(due)
            .arg(timestamp::format(&now))
            .arg(millis(now))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(n == 1)
    }

    async fn release(&self, id: Uuid, token: Uuid, now: DateTime<Utc>) -> Result<bool, QueueError> {
        let n: i64 = self
            .scripts
            .release
            .arg(&self.prefix)
            .arg(id.to_string())
            .arg(token.to_string())
            .arg(millis(now))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(n == 1)
    }

    fn wakeup(&self) -> &Wakeup {
        &self.wake
    }

    async fn enqueue_tick(
        &self,
        name: &str,
        tick: DateTime<Utc>,
        job: Job,
    ) -> Result<Option<Job>, QueueError> {
        let marker = format!("{}:tick:{name}:{}", self.prefix, millis(tick));
        let seq = self
            .enqueue_inner(&job, Some((&marker, millis(tick))))
            .await?;
        Ok((seq > 0).then_some(job))
    }

    async fn purge(&self, before: DateTime<Utc>) -> Result<u64, QueueError> {
        let mut total = 0u64;
        loop {
            let (jobs, ticks): (u64, u64) = self
                .scripts
                .purge
                .arg(&self.prefix)
                .arg(millis(before))
                .arg(500)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(unavailable)?;
            total += jobs;
            if jobs == 0 && ticks == 0 {
                return Ok(total);
            }
        }
    }
}

impl RedisQueue {
    /// Creates the job (unless `tick` names a marker that already exists);
    /// returns its position, 0 when the tick had fired.
    async fn enqueue_inner(&self, job: &Job, tick: Option<(&str, i64)>) -> Result<i64, QueueError> {
        let mut call = self.scripts.enqueue.prepare_invoke();
        self.create_args(&mut call, job, None);
        if let Some((marker, at)) = tick {
            call.arg(marker).arg(TICK_TTL_SECS).arg(at);
        }
        call.invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    /// The arguments of the scripts' `create`, in order.
    fn create_args(&self, call: &mut redis::ScriptInvocation<'_>, job: &Job, owner: Option<Uuid>) {
        call.arg(&self.prefix)
            .arg(job.id.to_string())
            .arg(job.kind.as_str())
            .arg(job.args.to_string())
            .arg(job.status.as_str())
            .arg(job.attempts)
            .arg(job.max_attempts)
            .arg(timestamp::format(&job.created_at))
            .arg(millis(job.run_at.unwrap_or(job.created_at)))
            .arg(job.kind.lane().as_str())
            .arg(owner.map(|o| o.to_string()).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_comes_off_the_url() {
        assert_eq!(
            split_prefix("redis://h:6379/0"),
            ("redis://h:6379/0".into(), "notes".into())
        );
        assert_eq!(
            split_prefix("redis://h/1?prefix=t42"),
            ("redis://h/1".into(), "t42".into())
        );
        assert_eq!(
            split_prefix("redis://h/1?prefix=t&protocol=resp3"),
            ("redis://h/1?protocol=resp3".into(), "t".into())
        );
    }
}
