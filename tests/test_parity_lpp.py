"""Parity with LP++'s public code (FereshteShakeri/FewShot-CLIP-Strong-Baseline@f81054f995b060f8348d20e7306e15889b70c786).

Recorded by running, on CPU (torch 2.14.1 and 2.1.2 agree), the original's ``methods/linear_probe_p2.py``
(``calculate_lr_w``, ``calculate_lr_alpha``, ``calculate_init_alpha``, ``LinearProbe_P2.forward`` with
``train_epoch`` 300 and ``shots`` 4) and ``methods/utils.py`` ``compute_centroids`` on the fixed features
below (an identity ``encode_image``, so its features are these, normalised), with ``.cuda()`` removed and
``get_one_hot``'s dtype set to float32 (on a CPU its fp16 one-hot cannot multiply fp32 features); the
logits were read from its ``F.cross_entropy`` calls, the initial bias of its ``nn.Linear`` (random) and the
final ``W``, ``b`` from its SGD's parameters, ``alpha`` from its ``Variable``. And ``utils.py``
``clip_classifier`` with its own ``clip`` package on the parity CLIP of ``tests/test_parity_taskres.py``.
"""
import math

import pytest
import torch

from tests.conftest import make_trainer, train_args
from tests.fixtures.synthetic_datasets import write_dataset
from tests.test_parity_taskres import write_parity_clip

K, SHOTS, D = 3, 4, 16


def _feats(n_per_class, a, noise, off):
    rows, labels = [], []
    for c in range(K):
        for s in range(n_per_class):
            i = c * n_per_class + s
            rows.append([2.0 * math.cos(0.5 * j) + 0.5 * math.cos(2.1 * c + 0.9 * j)
                         + noise * math.sin(a * (i + off) * (j + 1)) for j in range(D)])
            labels.append(c)
    return torch.tensor(rows, dtype=torch.float32), torch.tensor(labels)


def fixed_inputs():
    """Support (4 shots), val (4 per class), test (10 per class) features and unit text embeddings [K, D]."""
    train, ytrain = _feats(SHOTS, 0.37, 1.0, 1)
    val, yval = _feats(4, 0.53, 1.2, 2)
    test, ytest = _feats(10, 0.29, 1.2, 3)
    text = torch.tensor([[math.sin(0.8 * j + 1.0) + 0.4 * math.cos(0.5 * j) + 0.3 * math.cos(2.1 * c + 0.9 * j + 0.6)
                          for j in range(D)] for c in range(K)], dtype=torch.float32)
    return train, ytrain, val, yval, test, ytest, text / text.norm(dim=-1, keepdim=True)


# calculate_lr_w (scipy eigh of F^T F), calculate_lr_alpha, calculate_init_alpha, compute_centroids[0][0, :4]
ORIGINAL_LR_W = 5.2277984619140625
ORIGINAL_LR_ALPHA = 1.270677089691162
ORIGINAL_INIT_ALPHA = 102.99429545799892
ORIGINAL_CENTROID_0 = [1.9276, 1.6364, 0.68688, -0.16845]
# LinearProbe_P2.forward: nn.Linear's random bias after torch.manual_seed(1) (injected into ours), the training
# logits (first 3 support samples) at iterations 0, 10 and 299 (before each step), the final alpha, b, W[0, :4]
# and loss, the val accuracy at each iteration where it changes, the chosen iteration and its test accuracy.
ORIGINAL_BIAS_0 = [-0.07218930125236511, -0.027408599853515625, -0.2403470277786255]
ORIGINAL_LOGITS = {
    0: [[56.48423, 46.57098, 45.5099], [75.0808, 77.6758, 69.20166], [51.66001, 36.26655, 29.49705]],
    10: [[60.65288, 38.39297, 49.54975], [79.92889, 66.73605, 75.27088], [54.73383, 31.22974, 31.48433]],
    299: [[67.19364, 31.83818, 51.10935], [89.87533, 53.07278, 79.22142], [59.39141, 30.10098, 29.6589]],
}
ORIGINAL_ALPHA_FINAL = [114.58781433105469, 86.47874450683594, 109.43497467041016]
ORIGINAL_BIAS_FINAL = [-0.43170303106307983, -3.257256031036377, 3.3490211963653564]
ORIGINAL_W0_FINAL = [5.78763, 12.61479, 4.90226, -2.37298]
ORIGINAL_FINAL_LOSS = 6.473711982835084e-05
ORIGINAL_VAL_CHANGES = [(0, 75.0), (1, 58.33), (2, 66.67), (4, 75.0), (5, 66.67), (8, 58.33), (9, 75.0), (10, 66.67),
                        (22, 75.0), (29, 66.67), (33, 75.0), (48, 83.33), (227, 75.0)]
ORIGINAL_BEST_ITERATION, ORIGINAL_TEST_ACC = 226, 66.66666666666666


def test_step_sizes_and_initialisation_match_the_original():
    from trainers.lpp import class_sums, initial_alpha, step_size_alpha, step_size_w

    train, ytrain, *_, text = fixed_inputs()
    f = torch.nn.functional.normalize(train, dim=-1)
    assert step_size_w(f) == pytest.approx(ORIGINAL_LR_W, rel=1e-6)
    assert step_size_alpha(f, text) == pytest.approx(ORIGINAL_LR_ALPHA, rel=1e-6)
    assert initial_alpha(f, ytrain, text) == pytest.approx(ORIGINAL_INIT_ALPHA, rel=1e-6)
    # The public "centroids" are class *sums* of the normalised features (its division is commented out).
    sums = class_sums(f, ytrain, K)
    torch.testing.assert_close(sums[0, :4], torch.tensor(ORIGINAL_CENTROID_0), atol=1e-4, rtol=0)
    torch.testing.assert_close(sums, SHOTS * torch.stack([f[ytrain == c].mean(0) for c in range(K)]))


def _run_original_protocol(accumulate=True, iterations=300):
    """Our head through the iterations, val-evaluated after each, then its best-val state deployed."""
    from trainers.lpp import LPPHead, train_iteration

    train, ytrain, val, yval, test, ytest, text = fixed_inputs()
    head = LPPHead(text)
    head.initialise(train, ytrain)
    with torch.no_grad():
        head.bias.copy_(torch.tensor(ORIGINAL_BIAS_0))
    optim = torch.optim.SGD([head.weight, head.bias], lr=float(head.lr_w), momentum=0.9)
    logits, vals = {}, []
    for it in range(iterations):
        loss, logits[it] = train_iteration(head, optim, train, ytrain, it, 10, accumulate)
        with torch.no_grad():
            vals.append(float((head(val).argmax(-1) == yval).float().mean()) * 100)
        head.keep_if_best(vals[-1], it)
    final = {k: v.detach().clone() for k, v in head.named_parameters()}
    assert head.deploy_best()
    with torch.no_grad():
        test_acc = float((head(test).argmax(-1) == ytest).float().mean()) * 100
    return final, logits, loss, vals, (int(head.best_iteration), test_acc)


def test_three_hundred_iterations_follow_the_original():
    final, logits, loss, vals, best = _run_original_protocol()
    for it, expected in ORIGINAL_LOGITS.items():
        torch.testing.assert_close(logits[it][:3], torch.tensor(expected), atol=5e-4, rtol=0)
    torch.testing.assert_close(final["alpha"], torch.tensor(ORIGINAL_ALPHA_FINAL), atol=2e-4, rtol=0)
    torch.testing.assert_close(final["bias"], torch.tensor(ORIGINAL_BIAS_FINAL), atol=1e-4, rtol=0)
    torch.testing.assert_close(final["weight"][0, :4], torch.tensor(ORIGINAL_W0_FINAL), atol=1e-4, rtol=0)
    assert float(loss) == pytest.approx(ORIGINAL_FINAL_LOSS, rel=1e-2)
    changes = [(i, round(v, 2)) for i, v in enumerate(vals) if i == 0 or vals[i - 1] != v]
    assert changes == ORIGINAL_VAL_CHANGES
    # The best val accuracy (83.33) first comes at iteration 48; ">=" deploys the last iteration reaching it.
    assert best[0] == ORIGINAL_BEST_ITERATION and best[1] == pytest.approx(ORIGINAL_TEST_ACC)


def test_alpha_steps_use_the_accumulated_gradient_by_default():
    accumulated, *_ = _run_original_protocol(iterations=20)
    current, *_ = _run_original_protocol(False, iterations=20)
    # The first alpha step (iteration 9) already differs: the sum of 10 gradients against the 10th alone.
    assert not torch.allclose(accumulated["alpha"], current["alpha"])


# utils.py clip_classifier on the parity CLIP: rows [:6] of the text weights (normalised per template,
# averaged, normalised), Food101 (names cleaned: "apple pie"; "a photo of {}, a type of food.") and ImageNet
# (its 7 select templates, no "a photo of a {}.").
ORIGINAL_TEXT = {
    "food101": [[-0.08689, 0.01758, -0.13472, 0.17447, -0.23401, 0.20511],
                [-0.36788, -0.05843, 0.02221, -0.01062, 0.15553, 0.3384],
                [-0.02966, 0.03021, -0.14985, 0.13631, -0.33709, 0.14094]],
    "imagenet": [[-0.26464, 0.081, -0.02109, -0.19983, 0.18696, 0.11611],
                 [-0.14314, 0.02311, -0.11877, 0.01878, 0.15465, 0.07275],
                 [-0.13283, -0.05384, 0.03249, -0.08159, 0.05925, 0.02524]],
}
TOL = 6e-3  # the original computes its text features in fp16, ours in fp32: logits move by about 6e-3


@pytest.fixture(scope="module")
def parity_setup(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("lpp-data"))
    write_dataset("Food101", root, num_classes=3, per_class=10, image_size=32)
    write_dataset("ImageNet", root, num_classes=3, per_class=6, image_size=32)
    return root, write_parity_clip(str(tmp_path_factory.mktemp("lpp-clip") / "parity-clip.pt"))


@pytest.mark.parametrize("dataset", ["food101", "imagenet"])
def test_text_weights_match_the_original_clip_classifier(parity_setup, tmp_path, dataset):
    from datasets import IMAGENET_TEMPLATES_SELECT

    root, clip = parity_setup
    trainer = make_trainer(train_args(root, clip, str(tmp_path), trainer="LPP", dataset=dataset, shots=2))
    if dataset == "imagenet":
        assert trainer.templates == tuple(IMAGENET_TEMPLATES_SELECT)
    torch.testing.assert_close(trainer.model.head.text[:3, :6], torch.tensor(ORIGINAL_TEXT[dataset]), atol=TOL, rtol=0)
