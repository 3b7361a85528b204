//! Exercise 3's bench: byte by byte against a word at a time, on this machine.
//!
//! `cargo bench --bench unmask` prints the time and throughput of each version
//! for three payload sizes; criterion keeps an HTML report in
//! `target/criterion/report/index.html`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use wsse_exercises::unmask::{unmask_bytewise, unmask_wordwise};

fn unmask(c: &mut Criterion) {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut group = c.benchmark_group("unmask");
    for size in [125, 16 * 1024, 1024 * 1024] {
        let mut payload = vec![0x5a_u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("bytewise", size), &size, |b, _| {
            b.iter(|| unmask_bytewise(black_box(&mut payload), black_box(key)));
        });
        group.bench_with_input(BenchmarkId::new("wordwise", size), &size, |b, _| {
            b.iter(|| unmask_wordwise(black_box(&mut payload), black_box(key)));
        });
    }
    group.finish();
}

criterion_group!(benches, unmask);
criterion_main!(benches);
