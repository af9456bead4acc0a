//! `Llama::loss`: the same value as forward + masked_cross_entropy, and packed rows (segments)
//! giving the same loss and LoRA gradients as the examples run one per padded row.

use candle_core::{DType, Device, Tensor};
use ragtune_train::Llama;
use ragtune_train::loss::masked_cross_entropy;

fn tiny_model() -> Llama {
    crate::tiny_f64_model(1)
}

/// (input ids, target ids, weights) of one example.
type Example = (Vec<u32>, Vec<u32>, Vec<f64>);

fn examples() -> Vec<Example> {
    vec![
        (
            vec![3, 17, 42, 8],
            vec![17, 42, 8, 60],
            vec![0., 1., 1., 1.],
        ),
        (vec![5, 6, 7], vec![6, 7, 9], vec![0., 0., 1.]),
        (
            vec![11, 12, 13, 14, 15],
            vec![12, 13, 14, 15, 16],
            vec![0., 1., 0., 1., 1.],
        ),
    ]
}

/// Rows of `len` from examples laid end to end per row, padded at the end with a zero-weight
/// segment; returns (inputs, targets, weights, segments).
fn batch(rows: &[Vec<&Example>], len: usize) -> [Tensor; 4] {
    let (mut ids, mut tgt, mut w, mut seg) = (vec![], vec![], vec![], vec![]);
    for row in rows {
        let mut n = 0;
        for (s, (i, t, wt)) in row.iter().enumerate() {
            ids.extend(i);
            tgt.extend(t);
            w.extend(wt);
            seg.extend(std::iter::repeat_n(s as u32, i.len()));
            n += i.len();
        }
        ids.extend(std::iter::repeat_n(0u32, len - n));
        tgt.extend(std::iter::repeat_n(0u32, len - n));
        w.extend(std::iter::repeat_n(0f64, len - n));
        seg.extend(std::iter::repeat_n(row.len() as u32, len - n));
    }
    let dev = &Device::Cpu;
    let shape = (rows.len(), len);
    [
        Tensor::from_vec(ids, shape, dev).unwrap(),
        Tensor::from_vec(tgt, shape, dev).unwrap(),
        Tensor::from_vec(w, shape, dev).unwrap(),
        Tensor::from_vec(seg, shape, dev).unwrap(),
    ]
}

#[test]
fn loss_equals_forward_plus_masked_cross_entropy() {
    let model = tiny_model();
    let ex = examples();
    let [ids, tgt, w, _] = batch(&[vec![&ex[0]], vec![&ex[1]], vec![&ex[2]]], 5);
    let reference = masked_cross_entropy(&model.forward(&ids, None).unwrap(), &tgt, &w).unwrap();
    let ours = model
        .loss(&ids, &tgt, &w.to_dtype(DType::F32).unwrap(), None, None)
        .unwrap();
    let (a, b) = (
        reference.to_scalar::<f64>().unwrap(),
        ours.to_scalar::<f64>().unwrap(),
    );
    assert!((a - b).abs() < 1e-12, "{a} vs {b}");
}

#[test]
fn packed_rows_match_separate_rows_in_loss_and_gradients() {
    let model = tiny_model();
    let ex = examples();
    let [ids, tgt, w, _] = batch(&[vec![&ex[0]], vec![&ex[1]], vec![&ex[2]]], 5);
    let separate = model.loss(&ids, &tgt, &w, None, None).unwrap();
    // Two examples in the first row, the third alone with three padding positions after it.
    let [ids, tgt, w, seg] = batch(&[vec![&ex[0], &ex[1]], vec![&ex[2]]], 8);
    let packed = model.loss(&ids, &tgt, &w, Some(&seg), None).unwrap();
    let (a, b) = (
        separate.to_scalar::<f64>().unwrap(),
        packed.to_scalar::<f64>().unwrap(),
    );
    assert!((a - b).abs() < 1e-12, "separate {a} vs packed {b}");

    let (gs, gp) = (separate.backward().unwrap(), packed.backward().unwrap());
    let mut worst = 0f64;
    for var in model.trainable_vars() {
        let d = (gs.get(&var).unwrap() - gp.get(&var).unwrap()).unwrap();
        worst = worst.max(
            d.abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap(),
        );
    }
    assert!(worst < 1e-12, "LoRA gradients differ by {worst}");

    // Without segments the second example would attend to the first: a different loss.
    let unmasked = model
        .loss(&ids, &tgt, &w, None, None)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!((unmasked - b).abs() > 1e-6, "segments changed nothing");
}

#[test]
fn bad_segments_are_errors() {
    let model = tiny_model();
    let ex = examples();
    let [ids, tgt, w, _] = batch(&[vec![&ex[0], &ex[1]]], 8);
    let dev = &Device::Cpu;
    let decreasing = Tensor::new(&[[0u32, 0, 1, 1, 0, 0, 0, 0]], dev).unwrap();
    let err = model
        .loss(&ids, &tgt, &w, Some(&decreasing), None)
        .unwrap_err();
    assert!(err.to_string().contains("must not decrease"), "{err}");
    let short = Tensor::new(&[[0u32, 0, 1]], dev).unwrap();
    assert!(model.loss(&ids, &tgt, &w, Some(&short), None).is_err());
    let none = w.zeros_like().unwrap();
    assert!(model.loss(&ids, &tgt, &none, None, None).is_err());
}
