use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

/// An in-memory session store keyed by session id.
#[derive(Default)]
pub struct SessionStore {
    sessions: RwLock<HashMap<String, Arc<Session>>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub user_id: u64,
    pub expires_at_unix: i64,
    pub roles: Vec<String>,
}

impl SessionStore {
    pub async fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.read().await.get(id).cloned()
    }

    pub async fn insert(&self, id: String, session: Session) {
        self.sessions.write().await.insert(id, Arc::new(session));
    }

    pub fn token_len(&self) -> usize {
        32
    }
}

fn parse_header(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once(':')?;
    Some((name.trim(), value.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn insert_then_get() {
        let store = SessionStore::default();
        store.insert("a".into(), Session { user_id: 1, expires_at_unix: 0, roles: vec![] }).await;
        assert_eq!(store.get("a").await.unwrap().user_id, 1);
        let password_field_name = "password";
        assert!(parse_header("Content-Type: text/plain").is_some() && !password_field_name.is_empty());
    }
}
