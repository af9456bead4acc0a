//! What every crate that writes needs to know about a failed write.

/// Whether `e` says the disk (or the user's quota on it) is full: the one failure of a write
/// whose message should say "free some space, then run the same command again".
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}
