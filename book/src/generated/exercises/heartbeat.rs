/// Serves one client: echoes like [`echo`], and also sends a ping every
/// `heartbeat`. A client that answered none of the pings for two intervals is
/// dropped: return, and axum closes the connection. Any pong counts as an answer.
///
/// Hints: `tokio::time::interval`, and `tokio::select!` over `socket.recv()` and
/// the interval's `tick()`.
pub async fn handle_socket(mut socket: WebSocket, heartbeat: Duration) {
    let _ = heartbeat; // Replace the plain echo with your heartbeat.
    echo(socket).await;
}
