//! Admin UI sessions, held by the process: the cookie carries a random
//! session id; what it stands for stays here. A session keeps the hash of
//! the key it was opened with (never the key), so the key is checked again
//! on every request and revoking it ends the session at once.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use rand::RngCore;

/// Sessions kept at most; past it the one used longest ago goes first, so
/// a flood of log-ins cannot grow memory.
const MAX_SESSIONS: usize = 10_000;

/// Who opened a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// The master key (its hash, so a changed master key ends the session).
    Master { hash: String },
    /// An API key with the admin scope, by hash.
    Key { hash: String },
}

#[derive(Debug, Clone)]
pub struct Session {
    pub holder: Holder,
    /// Sent back with every state-changing form.
    pub csrf: String,
    started: Instant,
    used: Instant,
}

pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    /// A session ends this long after it began, however it is used.
    lifetime: Duration,
    /// And this long after its last request.
    idle: Duration,
    /// The forms' token in development mode, where there are no sessions:
    /// a cross-site form must not drive a local instance either.
    development_csrf: String,
}

/// 32 random bytes, hex: a session id or a CSRF token.
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    pub fn new(lifetime: Duration, idle: Duration) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            lifetime,
            idle,
            development_csrf: token(),
        }
    }

    pub fn development_csrf(&self) -> &str {
        &self.development_csrf
    }

    /// A new session for `holder`; returns its id.
    pub fn open(&self, holder: Holder) -> String {
        let now = Instant::now();
        let id = token();
        let mut map = self.map.lock().expect("sessions lock");
        map.retain(|_, s| self.alive(s, now));
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                holder,
                csrf: token(),
                started: now,
                used: now,
            },
        );
        id
    }

    /// The live session with this id, marked as used now.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.map.lock().expect("sessions lock");
        let alive = map.get(id).is_some_and(|s| self.alive(s, now));
        if !alive {
            map.remove(id);
            return None;
        }
        let session = map.get_mut(id)?;
        session.used = now;
        Some(session.clone())
    }

    pub fn close(&self, id: &str) {
        self.map.lock().expect("sessions lock").remove(id);
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.started) < self.lifetime && now.duration_since(s.used) < self.idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Holder {
        Holder::Key { hash: "h".into() }
    }

    #[test]
    fn a_session_lives_until_closed_idle_or_old() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        let id = s.open(key());
        assert_eq!(s.get(&id).unwrap().holder, key());
        s.close(&id);
        assert!(s.get(&id).is_none());

        let idle = Sessions::new(Duration::from_secs(60), Duration::from_millis(20));
        let id = idle.open(key());
        std::thread::sleep(Duration::from_millis(40));
        assert!(idle.get(&id).is_none(), "idle too long");

        let old = Sessions::new(Duration::from_millis(30), Duration::from_secs(60));
        let id = old.open(key());
        std::thread::sleep(Duration::from_millis(15));
        assert!(old.get(&id).is_some(), "used recently");
        std::thread::sleep(Duration::from_millis(25));
        assert!(old.get(&id).is_none(), "past its lifetime, used or not");
    }

    #[test]
    fn ids_and_tokens_are_unguessable_and_distinct() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        let (a, b) = (s.open(key()), s.open(key()));
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_ne!(s.get(&a).unwrap().csrf, s.get(&b).unwrap().csrf);
    }

    #[test]
    fn the_number_of_sessions_is_bounded() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        let first = s.open(key());
        for _ in 0..MAX_SESSIONS {
            s.open(key());
        }
        assert!(s.map.lock().unwrap().len() <= MAX_SESSIONS);
        assert!(s.get(&first).is_none(), "the longest unused went first");
    }
}
