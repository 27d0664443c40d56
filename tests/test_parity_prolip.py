"""Parity with the public ProLIP code (astra-vision/ProLIP@b43e795, ``methods/ProLIP.py``, ``ProLIP.forward``).

How the ``ORIGINAL_*`` facts were recorded: the original's ``ProLIP.forward`` ran unchanged on CPU (the only edit:
``.cuda()`` -> ``.cpu()`` in ``methods/ProLIP.py``, ``methods/utils.py``, ``utils.py``), with its own ``clip`` package
(``build_model`` then ``model.float()``, as its ``clip.load`` does on a CPU), on the parity CLIPs below (ViT: the
project's parity CLIP; ResNet: the same drawing rule on the tiny ResNet architecture). Inputs: 3 Food101 classes
(template "a photo of {}, a type of food.", text classifier from its ``utils.clip_classifier``), 2 shots, 3 augmented
views of the 6 training images drawn as ``RandomState(7).standard_normal`` tensors ``[6, 3, 32, 32]`` (view 0, 1, 2)
and 4 test images after them; pre-projection features saved per view by its ``compute_image_features`` in its
``features_<backbone>_<dataset>/<N>_shot/seed<S>/f<v>.pth`` layout; config ``train_epoch 5``, ``aug_views 3``,
``lr_v 1e-2``, ``lambda_funct_1_N True`` (lambda = 1/2), ``search_lr False``, ``save_checkpoints True``. Recorded:
its printed per-epoch ``Loss_ce``/``Loss_mse`` (4 decimals), its test accuracy, and the test logits
``100 * norm(proj(x)) @ text_weights`` of its saved projection. Torch 2.14 CPU, fp32.
"""
import numpy as np
import torch

from tests.test_parity_taskres import parity_state_dict


def parity_rn_state_dict(seed: int = 0, embed_dim: int = 32) -> dict:
    """The tiny ResNet CLIP's OpenAI-format state dict drawn like ``parity_state_dict`` (fp16), except: batch-norm
    weights near 1, running variances positive, and image-tower matrices He-scaled (``sqrt(2 / fan_in)``), so
    different images give visibly different features."""
    from trainers.random_clip import build_random_clip

    rs = np.random.RandomState(seed)
    state = {}
    for key, value in sorted(build_random_clip("resnet", embed_dim=embed_dim).state_dict().items()):
        if not value.is_floating_point():
            state[key] = value
            continue
        shape = tuple(value.shape)
        if key == "logit_scale":
            drawn = np.full(shape, np.log(100.0))
        elif key.endswith("running_var"):
            drawn = 1.0 + 0.1 * np.abs(rs.standard_normal(shape))
        elif ("ln" in key or "bn" in key or key.endswith("norm.weight")) and key.endswith("weight"):
            drawn = 1.0 + 0.1 * rs.standard_normal(shape)
        elif key.endswith("bias") or key.endswith("running_mean"):
            drawn = 0.02 * rs.standard_normal(shape)
        elif key == "text_projection":
            drawn = rs.standard_normal(shape) / np.sqrt(shape[0])
        elif key.startswith("visual.") and len(shape) > 1:  # He-scaled, so image signals survive the tiny ResNet
            drawn = rs.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))
        else:
            drawn = 0.05 * rs.standard_normal(shape)
        state[key] = torch.from_numpy(drawn.astype(np.float32)).half()
    return state


def parity_states() -> dict:
    return {"vit": parity_state_dict(), "rn": parity_rn_state_dict()}


def parity_inputs():
    """The original run's inputs: 3 views of the 6 training images, 4 test images, labels."""
    rs = np.random.RandomState(7)
    views = [torch.tensor(rs.standard_normal((6, 3, 32, 32)), dtype=torch.float32) for _ in range(3)]
    test = torch.tensor(rs.standard_normal((4, 3, 32, 32)), dtype=torch.float32)
    return views, torch.tensor([0, 0, 1, 1, 2, 2]), test, torch.tensor([0, 1, 2, 0])


CLASSNAMES = ["apple_pie", "baby_back_ribs", "baklava"]
TEMPLATE = "a photo of {}, a type of food."

# Printed by the original (see the module docstring); per kind: ViT (``visual.proj``) and ResNet (``attnpool.c_proj``).
ORIGINAL = {
    "vit": {"ce": [2.1675, 1.7682, 1.9302, 1.9507, 1.7979], "mse": [0.0, 0.002, 0.0043, 0.005, 0.0051],
            "final_loss": 1.800387, "acc": 50.0,
            "test_logits": [[16.1891, 13.0566, 13.6827], [15.3369, 13.2261, 12.6942], [16.7718, 13.9195, 14.1243],
                            [16.0524, 13.3964, 13.6605]],
            "pre0": [-0.89459, 1.42724, 0.56368, -0.55242, -0.35523, -0.15441]},
    "rn": {"ce": [9.704, 5.8663, 2.736, 1.6868, 1.8283], "mse": [0.0, 0.0081, 0.0268, 0.0463, 0.0505],
           "final_loss": 1.853526, "acc": 25.0,
           "test_logits": [[-11.7199, -11.1649, -12.777], [-14.2221, -10.7876, -15.7485], [-18.131, -13.9978, -19.5602],
                           [-17.4479, -12.9686, -18.9685]],
           "pre0": [-0.28467, -0.73911, -0.12972, -0.1097, 0.44979, -0.1421]},
}
# The original's text classifier (``text_weights.t()[:, :4]``), the same for both parity CLIPs (same text tower draws).
ORIGINAL_TEXT = [[-0.08689, 0.01758, -0.13472, 0.17447], [-0.36788, -0.05843, 0.02221, -0.01062],
                 [-0.02966, 0.03021, -0.14985, 0.13631]]
EPOCHS, LR, SHOTS = 5, 1e-3, 2


import pytest  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from trainers.backbone import load_backbone  # noqa: E402
from trainers.prolip import (  # noqa: E402
    LOGIT_SCALE,
    ProjectionHead,
    build_optimization,
    projected_logits,
    prolip_loss,
    regularization_weight,
)
from trainers.text_classifier import build_zero_shot_classifier  # noqa: E402


@pytest.fixture(scope="module", params=["vit", "rn"])
def parity(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("parity") / f"parity-{request.param}.pt"
    torch.save(parity_states()[request.param], path)
    return request.param, load_backbone(str(path), torch.device("cpu"), "fp32")


def test_pre_projection_features_match_the_originals_and_project_to_clips_features(parity):
    """The original's modified ``clip/model.py`` returns the attention pool's output before ``c_proj`` (ResNet) or
    ``ln_post`` of the class token before ``proj`` (ViT); projecting them gives CLIP's own image features."""
    kind, clip = parity
    views, _, _, _ = parity_inputs()
    pre = clip.encode_image_pre_projection(views[0])
    torch.testing.assert_close(pre[0, :6], torch.tensor(ORIGINAL[kind]["pre0"]), rtol=0, atol=2e-5)
    weight, bias = clip.image_projection()
    assert (bias is not None) == (kind == "rn")
    torch.testing.assert_close(F.linear(pre, weight, bias), clip.encode_image(views[0]), rtol=1e-4, atol=1e-5)
    # (encode_image ran after encode_image_pre_projection: the projection is back in place)


def test_text_classifier_matches_the_original(parity):
    """``utils.clip_classifier``: names with ``_`` -> space, each prompt embedding normalised, mean, normalised."""
    _, clip = parity
    text = F.normalize(build_zero_shot_classifier(clip, CLASSNAMES, [TEMPLATE], normalize_each=True), dim=-1)
    torch.testing.assert_close(text[:, :4], torch.tensor(ORIGINAL_TEXT), rtol=0, atol=2e-5)


def test_training_matches_the_original_epoch_by_epoch(parity):
    """Full batch, one Adam step (eps 1e-4) per epoch, cosine over the epochs, lambda = 1/N, epoch e on view
    (e + 1) % V (the original's counter); CE and ||W - W0||^2 per epoch, then the test logits."""
    kind, clip = parity
    views, labels, test, _ = parity_inputs()
    pre_views = [clip.encode_image_pre_projection(v) for v in views]
    text = build_zero_shot_classifier(clip, CLASSNAMES, [TEMPLATE], normalize_each=True)
    weight0, bias = clip.image_projection()
    head = ProjectionHead(weight0, bias, text, LOGIT_SCALE, regularization_weight(SHOTS))
    assert head.lam == 0.5
    optim, sched = build_optimization([head.weight], LR, EPOCHS)
    ce, mse = [], []
    for epoch in range(EPOCHS):
        logits = head(pre_views[(epoch + 1) % len(views)])
        loss = head.loss(logits, labels)
        ce.append(F.cross_entropy(logits, labels).item())
        mse.append((head.weight - head.weight0).pow(2).sum().item())
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
    original = ORIGINAL[kind]
    torch.testing.assert_close(torch.tensor(ce), torch.tensor(original["ce"]), rtol=0, atol=2e-4)
    torch.testing.assert_close(torch.tensor(mse), torch.tensor(original["mse"]), rtol=0, atol=2e-4)
    assert loss.item() == pytest.approx(original["final_loss"], abs=1e-4)
    with torch.no_grad():
        test_logits = head(clip.encode_image_pre_projection(test))
    torch.testing.assert_close(test_logits, torch.tensor(original["test_logits"]), rtol=0, atol=2e-3)


def test_loss_is_cross_entropy_plus_lambda_times_squared_distance():
    torch.manual_seed(0)
    w0 = torch.randn(4, 6)
    w = w0 + 0.1 * torch.randn(4, 6)
    logits, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    expected = F.cross_entropy(logits, labels) + 0.25 * ((w - w0) ** 2).sum()
    assert prolip_loss(logits, labels, w, w0, 0.25).item() == pytest.approx(expected.item())
    assert prolip_loss(logits, labels, w0, w0, 0.25).item() == pytest.approx(F.cross_entropy(logits, labels).item())


def test_lambda_rules():
    assert regularization_weight(4) == 0.25
    assert regularization_weight(4, "1/N2") == 1 / 16
    assert regularization_weight(4, "const", 0.1) == 0.1
    with pytest.raises(ValueError, match="LAMBDA_RULE"):
        regularization_weight(4, "1/sqrtN")


def test_at_initialisation_the_head_is_zero_shot_clip(parity):
    """W = W0: the projected pre-projection features are CLIP's features, so the logits are zero-shot CLIP's."""
    _, clip = parity
    _, _, test, _ = parity_inputs()
    text = build_zero_shot_classifier(clip, CLASSNAMES, [TEMPLATE], normalize_each=True)
    weight0, bias = clip.image_projection()
    head = ProjectionHead(weight0, bias, text, LOGIT_SCALE, 0.5)
    zero_shot = LOGIT_SCALE * F.normalize(clip.encode_image(test), dim=-1) @ F.normalize(text, dim=-1).t()
    with torch.no_grad():
        torch.testing.assert_close(head(clip.encode_image_pre_projection(test)), zero_shot, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(projected_logits(clip.encode_image_pre_projection(test), weight0, bias,
                                                    F.normalize(text, dim=-1), LOGIT_SCALE), zero_shot,
                                   rtol=1e-4, atol=1e-4)
