/// Exponential backoff: the ceiling starts at `start` and doubles with every
/// failed attempt in a row, up to `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first attempt.
    pub start: Duration,
    /// The largest ceiling.
    pub cap: Duration,
}

impl Backoff {
    /// The delay before retrying after `attempt` failed attempts in a row (0 for
    /// the first), with full jitter: `fraction` (a random number in `[0, 1)`) of
    /// the ceiling `min(cap, start × 2^attempt)`. Must not overflow, however
    /// large `attempt` is.
    pub fn delay(&self, attempt: u32, fraction: f64) -> Duration {
        todo!()
    }
}

/// Follows the chat at `url` (like `ws://127.0.0.1:3001/ws?name=ada`): passes every
/// chat message to `on_message`, exactly once and in `seq` order, until
/// `on_message` returns `ControlFlow::Break(())`; then returns.
///
/// When connecting fails or a connection ends, waits
/// `backoff.delay(attempt, random_fraction())` and connects again, adding
/// `since=LAST` to the URL's query, where LAST is the `seq` of the last message
/// passed to `on_message` (no `since` before the first message). `attempt` counts
/// the failed attempts since a connection last delivered a message.
pub async fn follow_chat(
    url: &str,
    backoff: Backoff,
    mut on_message: impl FnMut(ChatMessage) -> ControlFlow<()>,
) {
    todo!()
}
