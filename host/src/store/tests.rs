use std::sync::Arc;

use super::*;

fn backends() -> Vec<(&'static str, Arc<dyn TokenStore>)> {
    vec![
        ("memory", Arc::new(MemoryStore::new())),
        ("sqlite", Arc::new(SqliteStore::in_memory().unwrap())),
    ]
}

#[test]
fn compare_and_swap_writes_only_over_the_expected_value() {
    for (name, store) in backends() {
        assert_eq!(store.get("k").unwrap(), None, "{name}");
        assert!(
            store.compare_and_swap("k", None, Some(b"one")).unwrap(),
            "{name}"
        );
        assert!(
            !store.compare_and_swap("k", None, Some(b"two")).unwrap(),
            "{name}"
        );
        assert!(
            !store
                .compare_and_swap("k", Some(b"zzz"), Some(b"two"))
                .unwrap(),
            "{name}"
        );
        assert_eq!(
            store.get("k").unwrap().as_deref(),
            Some(&b"one"[..]),
            "{name}"
        );
        assert!(
            store
                .compare_and_swap("k", Some(b"one"), Some(b"two"))
                .unwrap(),
            "{name}"
        );
        assert!(
            store.compare_and_swap("k", Some(b"two"), None).unwrap(),
            "{name}"
        );
        assert_eq!(store.get("k").unwrap(), None, "{name}");
    }
}

#[test]
fn a_sqlite_file_keeps_values_across_opens_and_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    SqliteStore::open(&path)
        .unwrap()
        .compare_and_swap("session", None, Some(b"v"))
        .unwrap();
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.get("session").unwrap().as_deref(), Some(&b"v"[..]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
}

#[test]
fn two_handles_on_one_file_see_each_others_swaps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let (a, b) = (
        SqliteStore::open(&path).unwrap(),
        SqliteStore::open(&path).unwrap(),
    );
    assert!(a.compare_and_swap("k", None, Some(b"a")).unwrap());
    assert!(!b.compare_and_swap("k", None, Some(b"b")).unwrap());
    assert!(b.compare_and_swap("k", Some(b"a"), Some(b"b")).unwrap());
    assert_eq!(a.get("k").unwrap().as_deref(), Some(&b"b"[..]));
}
