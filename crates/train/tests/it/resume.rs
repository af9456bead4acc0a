//! The trainer end to end on a tiny random llama: the loss falls over accumulated steps, and a
//! run killed after a checkpoint and resumed gives the same loss curve as one never stopped.

use ragtune_train::batch::{Row, sft_rows};
use ragtune_train::model::random_base_weights;
use ragtune_train::tokenize::Tokenized;
use ragtune_train::trainer::{CHECKPOINTS, Event, Outcome, TrainOptions, Trainer};
use ragtune_train::{Llama, LoraConfig, SplitMix64, TargetModule};
use std::ops::ControlFlow;
use std::path::Path;

/// Sequences whose "answer" counts up from a random start: learnable by the adapters.
fn rows(n: usize, seed: u64) -> Vec<Row> {
    let mut rng = SplitMix64::new(seed);
    let examples: Vec<Tokenized> = (0..n)
        .map(|_| {
            let len = 8 + (rng.next_u64() % 9) as usize;
            let start = (rng.next_u64() % 64) as u32;
            Tokenized {
                ids: (0..len as u32)
                    .map(|i| {
                        if i < 4 {
                            (rng.next_u64() % 64) as u32
                        } else {
                            (start + i) % 64
                        }
                    })
                    .collect(),
                trainable: (0..len).map(|i| i >= 4).collect(),
            }
        })
        .collect();
    sft_rows(&examples, 16, false).0
}

fn model(seed: u64) -> Llama {
    let cfg = crate::tiny_config();
    let weights = random_base_weights(&cfg, 1).unwrap();
    let lora = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.1,
        targets: TargetModule::ALL.to_vec(),
    };
    Llama::new(cfg, &weights, lora, seed).unwrap()
}

fn options() -> TrainOptions {
    TrainOptions {
        lr: 5e-2,
        epochs: 10,
        batch_size: 4,
        grad_accum: 2,
        warmup_ratio: 0.1,
        eval_every: 3,
        save_every: 2,
        seed: 7,
        ..TrainOptions::default()
    }
}

/// Step, loss, eval loss, learning rate and gradient norm of every step (not the timings).
type Curve = Vec<(usize, f64, Option<f64>, f64, f64)>;

fn curve(trainer: &Trainer) -> Curve {
    trainer
        .history()
        .iter()
        .map(|r| (r.step, r.loss, r.eval_loss, r.lr, r.grad_norm))
        .collect()
}

fn run(out: &Path, stop_after: Option<usize>) -> (Outcome, Curve) {
    let model = model(3);
    let mut trainer = Trainer::new(&model, rows(24, 1), rows(6, 2), 0, options(), out).unwrap();
    trainer.resume().unwrap();
    let outcome = trainer
        .run(&mut |event| match event {
            Event::Step(r) if Some(r.step) == stop_after => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        })
        .unwrap();
    (outcome, curve(&trainer))
}

#[test]
fn loss_falls_and_a_killed_run_resumes_on_the_same_curve() {
    let whole = tempfile::tempdir().unwrap();
    let (outcome, full) = run(whole.path(), None);
    assert_eq!(outcome, Outcome::Finished);
    // 24 rows / 4 per micro-batch = 6 micro-batches = 3 steps per epoch, 10 epochs.
    assert_eq!(full.len(), 30);
    let first_eval = full[2].2.unwrap();
    let last_eval = full[29].2.unwrap();
    // Held-out rows of the same task: the random tiny base generalises slowly, so only the
    // direction is checked here; the train loss must fall by a fifth.
    assert!(
        last_eval < first_eval,
        "eval loss {first_eval} -> {last_eval}"
    );
    assert!(
        full[29].1 < full[0].1 * 0.8,
        "train loss {} -> {}",
        full[0].1,
        full[29].1
    );

    // Killed after step 7: the newest checkpoint is step 6, so step 7 is lost and redone.
    let killed = tempfile::tempdir().unwrap();
    let (outcome, _) = run(killed.path(), Some(7));
    assert_eq!(outcome, Outcome::Stopped(7));
    let latest = std::fs::read_to_string(killed.path().join(CHECKPOINTS).join("latest")).unwrap();
    assert_eq!(latest, "step-000006");
    let (outcome, resumed) = run(killed.path(), None);
    assert_eq!(outcome, Outcome::Finished);
    assert_eq!(
        resumed, full,
        "resumed curve differs from the uninterrupted one"
    );

    // A different seed is a different run, and its checkpoints are not mixed up with this one.
    let model = model(3);
    let other = TrainOptions {
        seed: 8,
        ..options()
    };
    let mut trainer =
        Trainer::new(&model, rows(24, 1), Vec::new(), 0, other, killed.path()).unwrap();
    let err = trainer.resume().unwrap_err().to_string();
    assert!(err.contains("other training data"), "{err}");
}
