//! The wall clock in Unix milliseconds: the store, the pipeline and
//! everything above stamp with it, so it lives at the ground floor.

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
