//! LoRA layer gradients (through the frozen-weight op) against central finite differences, f64.

use candle_core::{DType, Device, Tensor, Var};
use ragtune_train::SplitMix64;
use ragtune_train::frozen::FrozenLinear;
use ragtune_train::lora::{Lora, LoraLinear};

fn rand(rng: &mut SplitMix64, shape: (usize, usize)) -> Tensor {
    let v: Vec<f64> = rng
        .uniform(shape.0 * shape.1, -1.0, 1.0)
        .into_iter()
        .map(f64::from)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// A non-linear scalar of the layer output, so second-order mistakes would show.
fn objective(layer: &LoraLinear, x: &Tensor, c: &Tensor) -> Tensor {
    let y = layer.forward(x, None).unwrap();
    (y.tanh().unwrap() * c).unwrap().sum_all().unwrap()
}

#[test]
fn lora_gradients_match_finite_differences() {
    let (n, din, dout, r) = (3, 5, 4, 2);
    let mut rng = SplitMix64::new(42);
    let w = rand(&mut rng, (dout, din));
    let lora = Lora::from_tensors(
        &rand(&mut rng, (r, din)),
        &rand(&mut rng, (dout, r)),
        1.5,
        0.0,
    )
    .unwrap();
    let layer = LoraLinear {
        base: FrozenLinear::new(w).unwrap(),
        lora: Some(lora.clone()),
    };
    let x = Var::from_tensor(&rand(&mut rng, (n, din))).unwrap();
    let c = rand(&mut rng, (n, dout));
    assert_eq!(x.dtype(), DType::F64);

    let grads = objective(&layer, x.as_tensor(), &c).backward().unwrap();
    let eps = 1e-6;
    let mut worst = 0f64;
    for var in [&lora.a, &lora.b, &x] {
        let analytic = grads
            .get(var.as_tensor())
            .expect("gradient")
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let base = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for i in 0..base.len() {
            let eval = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                objective(&layer, x.as_tensor(), &c)
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let err = (numeric - analytic[i]).abs() / (1.0 + numeric.abs());
            worst = worst.max(err);
        }
    }
    println!("worst relative gradient error {worst:e}");
    assert!(worst < 1e-7, "worst relative gradient error {worst}");
    // The frozen base weight gets no gradient.
    assert!(grads.get(layer.base.weight().unwrap()).is_none());
}

/// The whole tiny model in f64: gradients of the masked loss with respect to LoRA entries in
/// every layer and module (through attention, rope, RMSNorm, SwiGLU and the tied head) against
/// central finite differences.
#[test]
fn model_gradients_match_finite_differences() {
    model_gradient_check(crate::tiny_f64_model(1));
}

/// The same through qwen2's biased q/k/v projections.
#[test]
fn qwen2_model_gradients_match_finite_differences() {
    let cfg = ragtune_train::LlamaConfig {
        architecture: ragtune_train::Architecture::Qwen2,
        ..crate::tiny_config()
    };
    model_gradient_check(crate::tiny_f64_model_of(cfg, 1));
}

fn model_gradient_check(model: ragtune_train::Llama) {
    use ragtune_train::loss::masked_cross_entropy;

    let dev = Device::Cpu;
    let ids = Tensor::new(&[[3u32, 17, 42, 8, 8, 60], [1, 2, 3, 4, 5, 6]], &dev).unwrap();
    let targets = Tensor::new(&[[17u32, 42, 8, 8, 60, 9], [2, 3, 4, 5, 6, 7]], &dev).unwrap();
    let weights = Tensor::new(
        &[[0f64, 0., 1., 1., 1., 1.], [0., 1., 1., 0., 1., 1.]],
        &dev,
    )
    .unwrap();
    let loss = || {
        let logits = model.forward(&ids, None).unwrap();
        assert_eq!(logits.dtype(), DType::F64);
        masked_cross_entropy(&logits, &targets, &weights).unwrap()
    };
    let (worst, checked) = adapter_gradient_check(&model, loss);
    println!("{checked} entries, worst relative gradient error {worst:e}");
    assert_eq!(checked, 2 * 7 * 2 * 2);
    assert!(worst < 1e-5, "worst relative gradient error {worst}");
}

/// `Llama::loss` on packed rows (segments, chunked head) in f64 against central finite
/// differences, over LoRA entries in every layer and module.
#[test]
fn packed_loss_gradients_match_finite_differences() {
    let model = crate::tiny_f64_model(2);
    let dev = Device::Cpu;
    let ids = Tensor::new(&[[3u32, 17, 42, 8, 8, 60], [1, 2, 3, 4, 5, 6]], &dev).unwrap();
    let targets = Tensor::new(&[[17u32, 42, 8, 1, 60, 9], [2, 3, 4, 5, 6, 7]], &dev).unwrap();
    let weights = Tensor::new(
        &[[0f32, 1., 1., 0., 1., 1.], [0., 1., 1., 0., 1., 0.]],
        &dev,
    )
    .unwrap();
    let segments = Tensor::new(&[[0u32, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 1]], &dev).unwrap();
    let loss = || {
        model
            .loss(&ids, &targets, &weights, Some(&segments), None)
            .unwrap()
    };
    let (worst, _) = adapter_gradient_check(&model, loss);
    println!("worst relative gradient error {worst:e}");
    assert!(worst < 1e-5, "worst relative gradient error {worst}");
}

/// Central finite differences of `loss` against its backward pass at two entries of every
/// LoRA matrix of `model` (f64). Returns the worst relative error and the entries checked.
fn adapter_gradient_check(model: &ragtune_train::Llama, loss: impl Fn() -> Tensor) -> (f64, usize) {
    let dev = Device::Cpu;
    let grads = loss().backward().unwrap();
    let eps = 1e-5;
    let (mut worst, mut checked) = (0f64, 0);
    for (k, (_, _, l)) in model.adapters().into_iter().enumerate() {
        for var in [&l.a, &l.b] {
            let analytic = grads
                .get(var.as_tensor())
                .expect("gradient")
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let values = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            // Two entries per matrix, spread over the matrix.
            for i in [k % values.len(), (values.len() / 2 + 3 * k) % values.len()] {
                let eval = |delta: f64| {
                    let mut v = values.clone();
                    v[i] += delta;
                    var.set(&Tensor::from_vec(v, var.shape(), &dev).unwrap())
                        .unwrap();
                    loss().to_scalar::<f64>().unwrap()
                };
                let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps);
                var.set(&Tensor::from_vec(values.clone(), var.shape(), &dev).unwrap())
                    .unwrap();
                worst = worst.max((numeric - analytic[i]).abs() / (1e-3 + numeric.abs()));
                checked += 1;
            }
        }
    }
    (worst, checked)
}
