"""Parity with GDA's public code (mrflogs/ICLR24@560fe211700964c915442ff98dbe47dd09656a35).

Recorded by running, on CPU (torch 2.14.1, numpy 2), the original's ``main_few_shots.py`` ``run`` unchanged
(``cfg = {"augment_epoch": 3}``; ``Tensor.cuda`` made a no-op) with its own ``clip`` package's ``build_model``
on the parity CLIP of ``tests/test_parity_taskres.py`` (``clip.load``'s own non-JIT branch; its JIT attempt
leaves the file position moved on torch 2.14, and ``pkg_resources`` stubbed by ``packaging``). Its inputs:
the images of ``parity_images`` (3 classes, 4 shots, view ``p`` on pass ``p`` of ``train_loader_cache`` in
two batches of 7 and 5), val (5 per class) and test (6 per class) features from its ``encode_image``,
normalised as its ``pre_load_features`` does, and the Food101 text weights below as ``clip_weights``. The
values were read from ``run``'s locals at its return (``sys.setprofile``) and its ``cls_acc`` calls (the same
arithmetic with ``[0]`` added: ``float()`` of a one-element array fails on numpy 2). The text weights come from
its ``utils.py`` ``clip_classifier`` on the same CLIP (class names with ``_``; rows ``[:6]``).

The features of this random CLIP are nearly parallel (within-class spread ~1e-3), so the precision is large
(~4e4) and the GDA logits ~2e5: a strict test of the estimator; the tolerances are relative.
"""
import pytest
import torch
import torch.nn.functional as F

from tests.test_parity_taskres import write_parity_clip
from trainers.gda import ALPHA_GRID, FALLBACK_ALPHA, GDAError, GDAHead, class_means, fit_gda, search_alpha

K, SHOTS, VIEWS, NVAL, NTEST = 3, 4, 3, 5, 6
NAMES = ["apple_pie", "baby_back_ribs", "baklava"]

ORIGINAL_TEXT = {  # clip_classifier(...).t()[:, :6]
    "food": [[-0.086885, 0.017585, -0.13472, 0.17447, -0.23401, 0.20511],
             [-0.36788, -0.058434, 0.022212, -0.010617, 0.15553, 0.3384],
             [-0.029658, 0.030215, -0.14985, 0.13631, -0.33709, 0.14094]],
    "imagenet": [[-0.23253, 0.072611, -0.085763, -0.2324, 0.17186, 0.11318],
                 [-0.027939, 0.067587, -0.14685, -0.10477, -0.089917, 0.043825],
                 [-0.13606, 0.13508, -0.097021, -0.29451, -0.013882, -0.015237]],
}
ORIGINAL_VECS_SHAPE = (36, 32)  # 3 passes x 12 images, pass-major
ORIGINAL_VEC_0 = [-0.0150964, 0.224916, 0.364551, 0.128653]       # vecs[0, :4] (view 0, image 0)
ORIGINAL_VEC_12 = [-0.0184602, 0.227087, 0.362372, 0.124155]      # vecs[12, :4] (view 1, image 0)
ORIGINAL_MUS = [[-0.0179235, 0.223998, 0.364521, 0.123247], [-0.0210675, 0.232686, 0.357196, 0.124941],
                [-0.0216605, 0.234699, 0.357778, 0.125722]]       # mus[:, :4]
ORIGINAL_PRECISION_ROW_0 = [38770.1, 1162.92, -146.816, -581.091]  # cov_inv[0, :4]
ORIGINAL_PRECISION_DIAG = [38770.1, 39354.8, 44323.5, 39021.1]      # diag(cov_inv)[:4]
ORIGINAL_W = [[-515.964, 10514.1, 17079.6, 5540.47], [-560.12, 10693.0, 16822.2, 5493.25],
              [-547.082, 10764.6, 16825.6, 5511.09]]               # W.t()[:, :4]
ORIGINAL_B = [-23422.164, -23454.355, -23452.119]
ORIGINAL_VAL_ACCS = [100 / 3, 100 / 3, 100 / 3, 60.0, 200 / 3, 280 / 3, 280 / 3]  # per alpha in the grid
ORIGINAL_ALPHA, ORIGINAL_VAL_ACC, ORIGINAL_TEST_ACC = 10.0, 280 / 3, 100.0
ORIGINAL_TEST_LOGITS = [[234188.12, 233938.67, 233940.45], [234706.97, 234447.31, 234425.69],
                        [234462.56, 234342.53, 234339.89]]          # test_logits[:3] at alpha 10


def parity_image(c: int, i: int, v: int) -> torch.Tensor:
    """A 3x32x32 image from a formula (no RNG): class pattern ``c``, image ``i``, augmented view ``v``."""
    ys = torch.arange(32, dtype=torch.float64).view(1, 32, 1)
    xs = torch.arange(32, dtype=torch.float64).view(1, 1, 32)
    ch = torch.arange(3, dtype=torch.float64).view(3, 1, 1)
    img = (0.8 * torch.cos(0.7 * xs * (c + 1) + 0.5 * ys * (c % 2 + 1) + ch)
           + 0.9 * torch.sin(0.37 * (i + 1) * (xs + 2 * ys + 1) + 1.3 * v + 0.2 * ch))
    return img.float()


def parity_images(per_class: int, offset: int, view: int = 0):
    images = [parity_image(c, offset + c * per_class + s, view) for c in range(K) for s in range(per_class)]
    return torch.stack(images), torch.arange(K).repeat_interleave(per_class)


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    """The project's backbone (open_clip, fp32) on the parity CLIP, and the features of every split."""
    from trainers.backbone import load_backbone

    clip = load_backbone(write_parity_clip(str(tmp_path_factory.mktemp("gda") / "parity-clip.pt")),
                         torch.device("cpu"), "fp32")
    with torch.no_grad():
        views = torch.stack([clip.encode_image(parity_images(SHOTS, 0, v)[0]) for v in range(VIEWS)])
        val_x, val_y = parity_images(NVAL, 100)
        test_x, test_y = parity_images(NTEST, 200)
        val, test = clip.encode_image(val_x), clip.encode_image(test_x)
    return clip, views, parity_images(SHOTS, 0)[1], (val, val_y), (test, test_y)


def _close(actual, expected, rel):
    torch.testing.assert_close(torch.as_tensor(actual, dtype=torch.float32),
                               torch.tensor(expected, dtype=torch.float32), rtol=rel, atol=0)


def test_text_weights_are_the_originals_clip_classifier(parity):
    from trainers.templates import imagenet_select
    from trainers.text_classifier import build_zero_shot_classifier

    clip = parity[0]
    for key, templates in (("food", ("a photo of {}, a type of food.",)), ("imagenet", imagenet_select())):
        text = F.normalize(build_zero_shot_classifier(clip, NAMES, templates, normalize_each=True), dim=-1)
        torch.testing.assert_close(text[:, :6], torch.tensor(ORIGINAL_TEXT[key]), atol=1e-4, rtol=0)


def test_estimator_and_classifier_match_the_original(parity):
    _, views, labels, _, _ = parity
    samples = F.normalize(views, dim=-1).reshape(-1, views.shape[-1])
    assert tuple(samples.shape) == ORIGINAL_VECS_SHAPE
    _close(samples[0, :4], ORIGINAL_VEC_0, 2e-4)
    _close(samples[12, :4], ORIGINAL_VEC_12, 2e-4)
    means = class_means(samples, labels.repeat(VIEWS), K)
    _close(means[:, :4], ORIGINAL_MUS, 2e-4)
    from trainers.gda import shrunk_precision

    precision = shrunk_precision(samples, labels.repeat(VIEWS), means)
    _close(torch.diagonal(precision)[:4], ORIGINAL_PRECISION_DIAG, 2e-3)
    torch.testing.assert_close(precision[0, :4], torch.tensor(ORIGINAL_PRECISION_ROW_0), atol=40.0, rtol=2e-3)
    weight, bias = fit_gda(views, labels, K)
    _close(weight[:, :4], ORIGINAL_W, 2e-3)
    _close(bias, ORIGINAL_B, 2e-4)


def test_alpha_search_and_test_logits_match_the_original(parity):
    clip, views, labels, (val, val_y), (test, test_y) = parity
    from trainers.text_classifier import build_zero_shot_classifier

    text = build_zero_shot_classifier(clip, NAMES, ("a photo of {}, a type of food.",), normalize_each=True)
    head = GDAHead(text, logit_scale=100.0, alpha=1.0)
    head.fit(views, labels)
    alpha, acc, accs = head.search(val, val_y)
    # Ties (10 and 100 both give 93.33%) keep the first value, as the original's strict ">".
    assert accs == pytest.approx(ORIGINAL_VAL_ACCS, abs=1e-9)
    assert (alpha, acc) == (ORIGINAL_ALPHA, pytest.approx(ORIGINAL_VAL_ACC))
    logits = head(test)
    _close(logits[:3], ORIGINAL_TEST_LOGITS, 1e-5)
    assert float((logits.argmax(-1) == test_y).float().mean()) * 100 == pytest.approx(ORIGINAL_TEST_ACC)


def test_search_falls_back_to_the_originals_default_when_nothing_is_right():
    zs = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    gda = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    alpha, acc, accs = search_alpha(zs, gda, torch.tensor([1, 1]))
    assert (alpha, acc) == (FALLBACK_ALPHA, 0.0) and accs == [0.0] * len(ALPHA_GRID)


def test_a_class_without_training_features_is_refused():
    with pytest.raises(GDAError, match=r"classes \[1\]"):
        fit_gda(torch.randn(2, 4, 8), torch.tensor([0, 0, 2, 2]), 3)


def test_gda_separates_gaussians_the_zero_shot_classifier_confuses():
    """Two classes whose means differ along one axis, with strongly correlated noise: the shared-covariance
    discriminant classifies them; with alpha 0 only the (useless) zero-shot classifier decides."""
    gen = torch.Generator().manual_seed(0)
    dim, n = 16, 40
    mix = torch.eye(dim) + 0.8 * torch.randn(dim, dim, generator=gen)
    base = torch.zeros(dim)
    base[0] = 5.0

    def draw(count):
        y = torch.arange(2).repeat_interleave(count)
        x = base + 0.3 * (y.float() * 2 - 1).unsqueeze(1) * torch.eye(dim)[1] + 0.03 * torch.randn(2 * count, dim, generator=gen) @ mix
        return x, y

    train, y = draw(n)
    test, ty = draw(200)
    head = GDAHead(torch.eye(dim)[2:4], logit_scale=100.0, alpha=0.0)  # text blind to the class axis
    head.fit(train.unsqueeze(0), y)
    zero_shot = float((head(test).argmax(-1) == ty).float().mean())
    head.alpha.fill_(1.0)
    gda = float((head(test).argmax(-1) == ty).float().mean())
    assert zero_shot <= 0.6 and gda >= 0.95
