//! Our frame codec next to tungstenite's, in one run: `cargo bench -p wsse-wire`.
//!
//! tungstenite keeps its masking function private, so it is compared through its public
//! paths: the header parser, frame formatting, and `WebSocket::read` from bytes to a
//! message (which includes unmasking). Both sides read from the same endless stream
//! of identical frames, so neither pays for allocating a fresh input per iteration.

use std::hint::black_box;
use std::io::{self, Cursor, Read, Write};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tungstenite::protocol::frame::coding::{Data, OpCode as TungsteniteOpCode};
use tungstenite::protocol::frame::{Frame as TungsteniteFrame, FrameHeader as TungsteniteHeader};
use tungstenite::protocol::{Role as TungsteniteRole, WebSocket};
use wsse_wire::frame::{FrameDecoder, FrameHeader, OpCode, Role, encode_frame};
use wsse_wire::mask::{apply_mask, apply_mask_bytewise};
use wsse_wire::message::{MessageAssembler, MessageRef};

const SIZES: [(usize, &str); 3] = [(20, "20 B"), (1024, "1 KiB"), (16 * 1024, "16 KiB")];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|index| index as u8).collect()
}

/// One masked client frame, repeated forever: what a server reads from a busy client.
struct EndlessFrames {
    frame: Vec<u8>,
    position: usize,
}

impl EndlessFrames {
    fn new(size: usize) -> EndlessFrames {
        let mut frame = Vec::new();
        encode_frame(&mut frame, true, OpCode::Binary, Some(KEY), &payload(size));
        EndlessFrames { frame, position: 0 }
    }
}

impl Read for EndlessFrames {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < buffer.len() {
            let available = &self.frame[self.position..];
            let count = available.len().min(buffer.len() - written);
            buffer[written..written + count].copy_from_slice(&available[..count]);
            written += count;
            self.position = (self.position + count) % self.frame.len();
        }
        Ok(written)
    }
}

impl Write for EndlessFrames {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How this workspace's scratch server reads: fill a buffer, decode frames in place,
/// move the unread tail to the front when a frame does not fit.
struct OurReader {
    source: EndlessFrames,
    buffer: Vec<u8>,
    /// The unread bytes are `buffer[start..end]`.
    start: usize,
    end: usize,
    decoder: FrameDecoder,
    assembler: MessageAssembler,
}

impl OurReader {
    fn new(size: usize) -> OurReader {
        OurReader {
            source: EndlessFrames::new(size),
            // Allocated and zeroed once; reads overwrite it in place.
            buffer: vec![0; 64 * 1024],
            start: 0,
            end: 0,
            decoder: FrameDecoder::new(Role::Server, 1 << 24),
            assembler: MessageAssembler::new(1 << 24),
        }
    }

    /// Reads the next message and hands it to `use_message` without copying it.
    fn read_message<R>(&mut self, use_message: impl FnOnce(MessageRef<'_>) -> R) -> R {
        loop {
            let unread = &mut self.buffer[self.start..self.end];
            if let Some(frame) = self.decoder.decode(unread).unwrap() {
                self.start += frame.consumed;
                let message = self
                    .assembler
                    .push_borrowed(&frame.header, frame.payload)
                    .unwrap();
                if let Some(message) = message {
                    return use_message(message);
                }
                continue;
            }
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            self.end += self.source.read(&mut self.buffer[self.end..]).unwrap();
        }
    }
}

fn header_decode(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("decode header");
    for (size, label) in SIZES {
        let mut bytes = Vec::new();
        FrameHeader {
            mask: Some(KEY),
            ..FrameHeader::new(OpCode::Binary, size as u64)
        }
        .encode(&mut bytes);
        group.bench_with_input(BenchmarkId::new("ours", label), &bytes, |bench, bytes| {
            bench.iter(|| FrameHeader::decode(black_box(bytes)).unwrap())
        });
        group.bench_with_input(
            BenchmarkId::new("tungstenite", label),
            &bytes,
            |bench, bytes| {
                bench.iter(|| TungsteniteHeader::parse(&mut Cursor::new(black_box(bytes))).unwrap())
            },
        );
    }
    group.finish();
}

fn read_message(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("decode masked frame to message");
    for (size, label) in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut ours = OurReader::new(size);
        group.bench_function(BenchmarkId::new("ours, borrowed", label), |bench| {
            bench.iter(|| ours.read_message(|message| drop(black_box(message))))
        });
        group.bench_function(BenchmarkId::new("ours, owned", label), |bench| {
            bench.iter(|| ours.read_message(|message| black_box(message.to_owned())))
        });
        let mut theirs =
            WebSocket::from_raw_socket(EndlessFrames::new(size), TungsteniteRole::Server, None);
        group.bench_function(BenchmarkId::new("tungstenite", label), |bench| {
            bench.iter(|| black_box(theirs.read().unwrap()))
        });
    }
    group.finish();
}

fn encode(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("encode server frame");
    for (size, label) in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let data = payload(size);
        let mut out = Vec::with_capacity(size + 16);
        group.bench_function(BenchmarkId::new("ours", label), |bench| {
            bench.iter(|| {
                out.clear();
                encode_frame(&mut out, true, OpCode::Binary, None, black_box(&data));
                black_box(out.len())
            })
        });
        let shared = tungstenite::Bytes::from(data.clone());
        group.bench_function(BenchmarkId::new("tungstenite", label), |bench| {
            bench.iter(|| {
                out.clear();
                TungsteniteFrame::message(
                    black_box(shared.clone()),
                    TungsteniteOpCode::Data(Data::Binary),
                    true,
                )
                .format(&mut out)
                .unwrap();
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn unmask(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("unmask");
    for (size, label) in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut data = payload(size);
        group.bench_function(BenchmarkId::new("word at a time", label), |bench| {
            bench.iter(|| apply_mask(black_box(&mut data), KEY, 0))
        });
        group.bench_function(BenchmarkId::new("byte at a time", label), |bench| {
            bench.iter(|| apply_mask_bytewise(black_box(&mut data), KEY, 0))
        });
    }
    group.finish();
}

criterion_group!(benches, header_decode, read_message, encode, unmask);
criterion_main!(benches);
