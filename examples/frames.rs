//! WebSocket frames, byte by byte, for both roles.
//!
//! ```text
//! cargo run --example frames -- Hello
//! cargo run --example frames -- --size 300 --mask-key 37fa213d
//! cargo run --example frames -- --table      # overhead per payload size, as Markdown
//! ```

use clap::Parser;
use wsse_wire::frame::{FrameHeader, OpCode, Role, encode_frame};
use wsse_wire::mask::random_key;

/// Print the frames that carry a message, annotated field by field.
#[derive(Parser)]
struct Arguments {
    /// The text to send.
    #[arg(default_value = "Hello")]
    text: String,
    /// Send this many bytes of binary payload instead of the text.
    #[arg(long)]
    size: Option<usize>,
    /// The client's masking key as 8 hex digits (random if omitted).
    #[arg(long, value_parser = parse_mask_key)]
    mask_key: Option<[u8; 4]>,
    /// Print a Markdown table of header overhead per payload size instead.
    #[arg(long)]
    table: bool,
}

fn main() {
    let arguments = Arguments::parse();
    if arguments.table {
        print_overhead_table();
        return;
    }
    let (opcode, payload) = match arguments.size {
        Some(size) => (OpCode::Binary, vec![b'a'; size]),
        None => (OpCode::Text, arguments.text.into_bytes()),
    };
    let key = arguments.mask_key.unwrap_or_else(random_key);
    for (role, mask) in [(Role::Server, None), (Role::Client, Some(key))] {
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, true, opcode, mask, &payload);
        describe(role, &bytes, &payload);
    }
}

// ANCHOR: describe
/// Prints `bytes` (one frame) with what each field means, read back by the decoder.
fn describe(role: Role, bytes: &[u8], payload: &[u8]) {
    let (header, header_len) = FrameHeader::decode(bytes)
        .expect("our own frame is valid")
        .expect("our own frame is complete");
    let direction = match role {
        Role::Server => "server -> client (servers never mask)",
        Role::Client => "client -> server (clients always mask)",
    };
    let overhead = header_len;
    println!(
        "{direction}: {} bytes on the wire for a {}-byte payload, {overhead} bytes of header ({:.1}%)",
        bytes.len(),
        payload.len(),
        100.0 * overhead as f64 / bytes.len() as f64
    );
    println!(
        "  {:<24} {:08b}  FIN={} RSV1-3={}{}{} opcode=0x{:x} ({:?})",
        hex(&bytes[..1]),
        bytes[0],
        u8::from(header.fin),
        u8::from(header.rsv1),
        u8::from(header.rsv2),
        u8::from(header.rsv3),
        header.opcode.bits(),
        header.opcode
    );
    let length_form = match bytes[1] & 0x7f {
        126 => "126 = the length follows in 2 bytes",
        127 => "127 = the length follows in 8 bytes",
        _ => "0-125 = the length itself",
    };
    println!(
        "  {:<24} {:08b}  MASK={} length field={} ({length_form})",
        hex(&bytes[1..2]),
        bytes[1],
        u8::from(header.mask.is_some()),
        bytes[1] & 0x7f
    );
    let mut position = 2;
    let extended = header_len - 2 - if header.mask.is_some() { 4 } else { 0 };
    if extended > 0 {
        println!(
            "  {:<24}           extended length = {}",
            hex(&bytes[2..2 + extended]),
            header.payload_len
        );
        position += extended;
    }
    if let Some(key) = header.mask {
        println!("  {:<24}           masking key", hex(&key));
        position += 4;
    }
    let shown = &bytes[position..];
    let masked = if header.mask.is_some() {
        ", masked: payload[i] XOR key[i % 4]"
    } else {
        ""
    };
    println!(
        "  {:<24}           payload{masked}: {}",
        hex_preview(shown),
        printable_preview(payload)
    );
    println!();
}
// ANCHOR_END: describe

/// Header bytes for payload sizes around each length boundary, in both roles.
fn print_overhead_table() {
    println!(
        "| payload bytes | server frame (unmasked) | client frame (masked) | header share, client |"
    );
    println!("|---:|---:|---:|---:|");
    for size in [0, 16, 125, 126, 1024, 65_535, 65_536, 1 << 20] {
        let server = FrameHeader::new(OpCode::Binary, size as u64).encoded_len();
        let client = FrameHeader {
            mask: Some([0; 4]),
            ..FrameHeader::new(OpCode::Binary, size as u64)
        }
        .encoded_len();
        println!(
            "| {size} | {server} | {client} | {:.3}% |",
            100.0 * client as f64 / (client + size) as f64
        );
    }
}

fn parse_mask_key(text: &str) -> Result<[u8; 4], String> {
    let digits = text.trim_start_matches("0x");
    if digits.len() != 8 {
        return Err(format!("expected 8 hex digits, got {:?}", text));
    }
    let value = u32::from_str_radix(digits, 16).map_err(|error| format!("{text:?}: {error}"))?;
    Ok(value.to_be_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn hex_preview(bytes: &[u8]) -> String {
    if bytes.len() <= 8 {
        hex(bytes)
    } else {
        format!("{} ...", hex(&bytes[..6]))
    }
}

fn printable_preview(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(&payload[..payload.len().min(40)]);
    let ellipsis = if payload.len() > 40 { "..." } else { "" };
    format!("{text:?}{ellipsis} ({} bytes)", payload.len())
}
