//! Which cached models to evict to make room for a new one: least recently used first, never one
//! in use. Pure (the cache passes its entries and the times it recorded), so its rules are tested
//! without files.

/// A cached model as eviction sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub sha256: String,
    pub size_bytes: u64,
    /// When a job last finished with it (ms since the epoch; the file's mtime across restarts).
    pub last_used_ms: i64,
    /// Jobs holding it now.
    pub in_use: u32,
}

/// Why there is no room now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoom {
    /// Models in use (or fetches under way) hold the space: room frees up when they end.
    Busy { need: u64, room: u64 },
    /// Larger than the whole cache: it never fits.
    TooLarge { need: u64, capacity: u64 },
}

/// The models to evict, oldest first, so that `need` more bytes fit under `capacity`, given the
/// cached `entries` and `pending` bytes of fetches under way.
pub fn evictions(
    entries: &[Cached],
    pending: u64,
    capacity: u64,
    need: u64,
) -> Result<Vec<String>, NoRoom> {
    if need > capacity {
        return Err(NoRoom::TooLarge { need, capacity });
    }
    let used: u64 = entries.iter().map(|e| e.size_bytes).sum::<u64>() + pending;
    let pinned: u64 = entries
        .iter()
        .filter(|e| e.in_use > 0)
        .map(|e| e.size_bytes)
        .sum::<u64>()
        + pending;
    let room = capacity.saturating_sub(pinned);
    if need > room {
        return Err(NoRoom::Busy { need, room });
    }
    let mut idle: Vec<&Cached> = entries.iter().filter(|e| e.in_use == 0).collect();
    idle.sort_by(|a, b| {
        a.last_used_ms
            .cmp(&b.last_used_ms)
            .then_with(|| a.sha256.cmp(&b.sha256))
    });
    let mut over = (used + need).saturating_sub(capacity);
    let mut evict = Vec::new();
    for e in idle {
        if over == 0 {
            break;
        }
        over = over.saturating_sub(e.size_bytes);
        evict.push(e.sha256.clone());
    }
    Ok(evict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cached(sha: &str, size: u64, used: i64, in_use: u32) -> Cached {
        Cached {
            sha256: sha.into(),
            size_bytes: size,
            last_used_ms: used,
            in_use,
        }
    }

    #[test]
    fn the_least_recently_used_idle_model_goes_first() {
        let entries = [
            cached("old", 100, 1, 0),
            cached("new", 100, 5, 0),
            cached("busy", 100, 0, 1),
        ];
        assert_eq!(evictions(&entries, 0, 350, 50), Ok(vec![]));
        assert_eq!(
            evictions(&entries, 0, 350, 100),
            Ok(vec!["old".to_string()])
        );
        assert_eq!(
            evictions(&entries, 0, 350, 200),
            Ok(vec!["old".to_string(), "new".to_string()])
        );
        // The model in use stays, so 300 bytes cannot be made.
        assert_eq!(
            evictions(&entries, 0, 350, 300),
            Err(NoRoom::Busy {
                need: 300,
                room: 250
            })
        );
        // A fetch under way holds its bytes too.
        assert_eq!(
            evictions(&entries, 200, 350, 100),
            Err(NoRoom::Busy {
                need: 100,
                room: 50
            })
        );
        assert_eq!(
            evictions(&[], 0, 300, 301),
            Err(NoRoom::TooLarge {
                need: 301,
                capacity: 300
            })
        );
    }

    proptest! {
        /// After the evictions the new model fits; nothing in use is evicted; nothing is evicted
        /// that was not needed (keeping the last one evicted would not have fitted); evicted models
        /// are older than every idle model kept.
        #[test]
        fn evictions_make_just_enough_room(
            models in proptest::collection::vec((1u64..200, 0i64..50, 0u32..2), 0..12),
            capacity in 1u64..1500,
            need in 1u64..400,
            pending in 0u64..200,
        ) {
            let entries: Vec<Cached> = models.iter().enumerate()
                .map(|(i, (size, used, in_use))| cached(&format!("m{i:02}"), *size, *used, *in_use)).collect();
            let used: u64 = entries.iter().map(|e| e.size_bytes).sum::<u64>() + pending;
            match evictions(&entries, pending, capacity, need) {
                Ok(evict) => {
                    let freed: u64 = entries.iter().filter(|e| evict.contains(&e.sha256)).map(|e| e.size_bytes).sum();
                    prop_assert!(used - freed + need <= capacity);
                    for sha in &evict {
                        let e = entries.iter().find(|e| &e.sha256 == sha).unwrap();
                        prop_assert_eq!(e.in_use, 0);
                        for kept in entries.iter().filter(|k| k.in_use == 0 && !evict.contains(&k.sha256)) {
                            prop_assert!(kept.last_used_ms >= e.last_used_ms);
                        }
                    }
                    if let Some(last) = evict.last() {
                        let size = entries.iter().find(|e| &e.sha256 == last).unwrap().size_bytes;
                        prop_assert!(used - (freed - size) + need > capacity, "evicted {last} for nothing");
                    }
                }
                Err(NoRoom::Busy { room, .. }) => prop_assert!(need > room),
                Err(NoRoom::TooLarge { .. }) => prop_assert!(need > capacity),
            }
        }
    }
}
