//! Lint benchmarks: the front end's cost against the bare YAML parse.
//!
//! One criterion group per input: the default policy
//! (`deploy/policies/default.yaml`, read at start) and generated clean
//! policies of 64, 1,000 and 10,000 selectors (`d4c_testgen`). In each
//! group, side by side, with throughput in bytes of YAML:
//!
//! - `saphyr_parse`: saphyr-parser's event parser feeding a receiver that
//!   does nothing: the floor any YAML front end pays;
//! - `yaml_tree`: stage 1, `d4cc::yaml::parse` (events to spanned nodes);
//! - `syntax`: stage 2 alone, `d4cc::syntax::read_policy` on a ready tree;
//! - `check`: stage 3 alone, `d4cc::check::check_policy` on a ready AST;
//! - `lint`: the whole front end, `d4cc::lint::lint_source`.
//!
//! The target is `lint` at most 3x `saphyr_parse` at 10,000 selectors.
//! `scripts/bench` runs this and prints the ratios. Every input is checked to
//! lint clean first, so the figures are those of the clean path.
//!
//! Run: `cargo bench -p d4cc --bench lint` (add a filter such as
//! `generated_10000` to run one group).

use criterion::measurement::WallTime;
use criterion::{black_box, BenchmarkGroup, Criterion, SamplingMode, Throughput};
use d4cc::diag::Diagnostics;
use d4cc::source::SourceFile;
use saphyr_parser::{Event, Parser, Span, SpannedEventReceiver};
use std::time::Duration;

/// Seed of the generated inputs: fixed, so runs compare.
const SEED: u64 = 0x0d4c_5eed;

/// A receiver that keeps nothing.
struct Sink {
    events: usize,
}

impl<'input> SpannedEventReceiver<'input> for Sink {
    fn on_event(&mut self, ev: Event<'input>, span: Span) {
        black_box((&ev, &span));
        self.events += 1;
    }
}

/// One benchmark input.
struct Input {
    name: String,
    source: SourceFile,
}

fn inputs() -> Result<Vec<Input>, String> {
    let default_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/policies/default.yaml");
    let default = std::fs::read_to_string(default_path).map_err(|e| format!("{default_path}: {e}"))?;
    let mut out =
        vec![Input { name: "default".into(), source: SourceFile { name: "default.yaml".into(), text: default } }];
    for selectors in [64, 1_000, 10_000] {
        let text = d4c_testgen::generate_policy(selectors, SEED);
        out.push(Input {
            name: format!("generated_{selectors}"),
            source: SourceFile { name: format!("{selectors}.yaml"), text },
        });
    }
    for input in &out {
        let output = d4cc::lint::lint_source(&input.source);
        if let Some(first) = output.diagnostics.first() {
            return Err(format!(
                "input `{}` does not lint clean ({} diagnostics, first: {} {})",
                input.name,
                output.diagnostics.len(),
                first.code.id(),
                first.message
            ));
        }
    }
    Ok(out)
}

/// Sampling tuned per size, so that the whole run stays under two minutes
/// on two cores: a lint of 10,000 selectors (2.2 MB) takes about 150 ms.
fn configure(group: &mut BenchmarkGroup<WallTime>, bytes: usize) {
    if bytes > 1_000_000 {
        group.sampling_mode(SamplingMode::Flat).sample_size(20).warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(5));
    } else if bytes > 100_000 {
        group.sampling_mode(SamplingMode::Flat).sample_size(20).warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
    } else {
        group.sample_size(50).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    }
}

fn bench_input(c: &mut Criterion, input: &Input) {
    let text = input.source.text.as_str();
    let mut group = c.benchmark_group(&input.name);
    group.throughput(Throughput::Bytes(text.len() as u64));
    configure(&mut group, text.len());

    group.bench_function("saphyr_parse", |b| {
        b.iter(|| {
            let mut sink = Sink { events: 0 };
            let result = Parser::new_from_str(black_box(text)).load(&mut sink, true);
            black_box((result.is_ok(), sink.events))
        })
    });
    group.bench_function("yaml_tree", |b| {
        b.iter(|| {
            let mut diagnostics = Diagnostics::new();
            black_box(d4cc::yaml::parse(black_box(&input.source), &mut diagnostics))
        })
    });

    // Stages 2 and 3 alone, on the output of the stage before.
    let mut diagnostics = Diagnostics::new();
    if let Some(root) = d4cc::yaml::parse(&input.source, &mut diagnostics) {
        group.bench_function("syntax", |b| {
            b.iter(|| {
                let mut diagnostics = Diagnostics::new();
                black_box(d4cc::syntax::read_policy(black_box(&root), text, &mut diagnostics))
            })
        });
        let policy = d4cc::syntax::read_policy(&root, text, &mut diagnostics);
        group.bench_function("check", |b| {
            b.iter(|| {
                let mut diagnostics = Diagnostics::new();
                black_box(d4cc::check::check_policy(black_box(&policy), text, &mut diagnostics))
            })
        });
    }

    group.bench_function("lint", |b| b.iter(|| black_box(d4cc::lint::lint_source(black_box(&input.source)))));
    group.finish();
}

fn main() {
    let inputs = match inputs() {
        Ok(inputs) => inputs,
        Err(err) => {
            eprintln!("lint bench: {err}");
            std::process::exit(2);
        }
    };
    let mut c = Criterion::default().configure_from_args();
    for input in &inputs {
        bench_input(&mut c, input);
    }
    c.final_summary();
}
