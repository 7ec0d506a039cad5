//! The gateway keys, indexed for authentication.

use std::collections::HashMap;
use std::sync::Arc;

use crate::policy::Key;

/// By the SHA-256 of the key: its index in `Policy::keys`, its id and
/// its team. The names are made once per policy and shared by every
/// request's `Caller` (a team is one allocation for all its keys).
pub type Index = HashMap<[u8; 32], (usize, Arc<str>, Arc<str>)>;

pub fn index(keys: &[Key]) -> Index {
    let mut teams: HashMap<&str, Arc<str>> = HashMap::new();
    let mut index = Index::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        let team = teams.entry(&k.team).or_insert_with(|| Arc::from(&*k.team));
        index.insert(k.hash, (i, Arc::from(&*k.id), team.clone()));
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, team: &str, n: u8) -> Key {
        Key {
            id: id.into(),
            team: team.into(),
            hash: [n; 32],
            models: None,
            admin: false,
        }
    }

    #[test]
    fn keys_of_a_team_share_its_name() {
        let keys = [key("a", "red", 1), key("b", "red", 2), key("c", "blue", 3)];
        let index = index(&keys);
        let (a, b, c) = (&index[&[1; 32]], &index[&[2; 32]], &index[&[3; 32]]);
        assert_eq!((a.0, &*a.1, &*a.2), (0, "a", "red"));
        assert_eq!((c.0, &*c.1, &*c.2), (2, "c", "blue"));
        assert!(Arc::ptr_eq(&a.2, &b.2));
        assert!(!index.contains_key(&[4; 32]));
    }
}
