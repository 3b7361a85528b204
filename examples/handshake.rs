//! The WebSocket opening handshake, computed step by step.
//!
//! ```text
//! cargo run --example handshake -- dGhlIHNhbXBsZSBub25jZQ==
//! cargo run --example handshake            # with a fresh random key
//! ```

use clap::Parser;
use wsse_wire::handshake::{
    GUID, accept_key_steps, client_request, generate_key, switching_protocols_response,
    validate_upgrade_request,
};

/// Compute Sec-WebSocket-Accept from a Sec-WebSocket-Key and show the whole exchange.
#[derive(Parser)]
struct Arguments {
    /// The client's Sec-WebSocket-Key (base64 of 16 bytes). A random one if omitted.
    key: Option<String>,
    /// The Host the example request is addressed to.
    #[arg(long, default_value = "127.0.0.1:3001")]
    host: String,
    /// The path of the example request.
    #[arg(long, default_value = "/ws?name=ada")]
    path: String,
}

fn main() {
    let arguments = Arguments::parse();
    let key = arguments.key.unwrap_or_else(generate_key);

    // ANCHOR: demo
    // The request a client sends, and the checks a server makes on it.
    let request = client_request(&arguments.host, &arguments.path, &key, &[]);
    let (head, _) = request.split_once("\r\n").expect("a request line");
    let headers: Vec<(&str, &[u8])> = request
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name, value.as_bytes()))
        .collect();
    let upgrade = match validate_upgrade_request("GET", (1, 1), headers) {
        Ok(upgrade) => upgrade,
        Err(error) => {
            eprintln!("error: {error}");
            eprintln!("a server would answer:\n{}", error.response());
            std::process::exit(2);
        }
    };
    let steps = accept_key_steps(&upgrade.key);
    // ANCHOR_END: demo

    println!("The client sends ({head}):\n");
    print_http(&request, "> ");
    println!("The server computes Sec-WebSocket-Accept in three steps:\n");
    println!("  1. append the GUID {GUID} to the key:");
    println!("     {}\n", steps.concatenated);
    println!("  2. SHA-1 of those {} bytes:", steps.concatenated.len());
    println!("     {}\n", hex(&steps.digest));
    println!("  3. base64 of the 20-byte digest:");
    println!("     {}\n", steps.accept);
    println!("and answers:\n");
    print_http(
        &switching_protocols_response(&steps.accept, None, None),
        "< ",
    );
    println!(
        "After the blank line both sides speak WebSocket frames on the same TCP connection \
         (try: cargo run --example frames -- Hello)."
    );
}

/// Prints an HTTP head line by line, showing where each CRLF is.
fn print_http(text: &str, prefix: &str) {
    for line in text.split("\r\n") {
        println!("  {prefix}{line}\\r\\n");
        if line.is_empty() {
            break;
        }
    }
    println!();
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
