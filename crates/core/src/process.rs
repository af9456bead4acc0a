//! What this process uses: CPU time so far (the cost side of every comparison), memory (resident,
//! peak, the C heap) and what the system has left.

/// CPU time this process has used (user + system, all threads), in seconds; 0 where
/// `getrusage` fails.
pub fn cpu_seconds() -> f64 {
    // SAFETY: a zeroed rusage is a valid value; getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer; on failure the zeroed struct reads as 0.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The C heap as glibc's allocator counts it. Rust's default allocator and llama.cpp both
/// allocate from it, so a leak grows `in_use`, while memory a burst used and freed stays in
/// `free_held` (and in RSS) until the allocator gives it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heap {
    /// Bytes allocated and not freed: blocks in the arenas and large blocks mapped on their own.
    pub in_use: u64,
    /// Bytes freed but kept in the arenas for later allocations.
    pub free_held: u64,
}

/// The C heap now; `None` where the C library is not glibc. It locks each arena in turn, so it
/// is for a gauge sampled now and then, not for a hot path.
pub fn heap() -> Option<Heap> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes nothing and returns a plain struct by value.
        let m = unsafe { libc::mallinfo2() };
        Some(Heap {
            in_use: (m.uordblks + m.hblkhd) as u64,
            free_held: m.fordblks as u64,
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// Hands the free pages the allocator holds back to the system (glibc's `malloc_trim`) and
/// returns how many bytes RSS fell by; 0 where there is nothing to give back, RSS cannot be
/// read or the C library is not glibc. It walks every arena: seconds apart at most, never per
/// request.
pub fn trim_heap() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let before = resident_bytes();
        // SAFETY: malloc_trim only releases free memory; 0 keeps no padding at the top.
        unsafe { libc::malloc_trim(0) };
        match (before, resident_bytes()) {
            (Some(before), Some(after)) => before.saturating_sub(after),
            _ => 0,
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    0
}

/// This process's resident memory now (`VmRSS`), in bytes; None off Linux.
pub fn resident_bytes() -> Option<u64> {
    proc_kib("/proc/self/status", "VmRSS:").map(|k| k * 1024)
}

/// This process's peak resident memory (`VmHWM`), in bytes; None off Linux.
pub fn peak_resident_bytes() -> Option<u64> {
    proc_kib("/proc/self/status", "VmHWM:").map(|k| k * 1024)
}

/// Memory the system reports available (`MemAvailable`), in bytes; None off Linux.
pub fn available_bytes() -> Option<u64> {
    proc_kib("/proc/meminfo", "MemAvailable:").map(|k| k * 1024)
}

/// The kibibytes on the line of `file` that starts with `key` (`/proc`'s `Key:  123 kB`).
fn proc_kib(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_time_grows_with_work() {
        let before = super::cpu_seconds();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(super::cpu_seconds() > before);
    }

    #[test]
    fn the_heap_counts_live_and_held_bytes_and_trimming_gives_held_pages_back() {
        const MB: u64 = 1024 * 1024;
        let Some(before) = super::heap() else {
            return; // not glibc: nothing is counted
        };
        // 64 MB in blocks of 16 KB, as a burst of small tensors and strings leaves them: in an
        // arena, not in mappings of their own that free() unmaps at once. Not zeroes, which
        // calloc could leave untouched.
        let blocks: Vec<Vec<u8>> = (0..4096).map(|i| vec![i as u8 | 1; 16 * 1024]).collect();
        let live = super::heap().unwrap();
        assert!(
            live.in_use >= before.in_use + 60 * MB,
            "{before:?} then {live:?}"
        );
        // Every other block freed: the holes cannot merge into the top of the heap and be
        // returned by free() itself, so the allocator holds them (and RSS keeps them).
        let kept: Vec<Vec<u8>> = blocks.into_iter().step_by(2).collect();
        let holes = super::heap().unwrap();
        assert!(
            holes.in_use + 30 * MB <= live.in_use,
            "{live:?} then {holes:?}"
        );
        assert!(holes.free_held >= 30 * MB, "{holes:?}");
        assert!(super::trim_heap() >= 16 * MB);
        std::hint::black_box(kept);
    }
}
