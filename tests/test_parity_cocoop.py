"""Parity with the public CoCoOp code (KaiyangZhou/CoOp@ff61507, ``trainers/cocoop.py``).

The facts below were recorded by running the original ``CustomCLIP`` (its ``PromptLearner.__init__`` and
``forward``, ``TextEncoder.forward``, ``CustomCLIP.forward`` in eval mode for the logits and in train mode
for the cross-entropy loss, then ``loss.backward()``), unchanged, with OpenAI's ``clip`` package
(openai/CLIP@d05afc4) on CPU, on the parity CLIP (``tests/test_parity_taskres.py``: every weight drawn
from ``numpy.random.RandomState(0)``, 32-d embedding, text width 64) after ``clip_model.float()`` (PREC fp32);
config N_CTX 4, CTX_INIT "a photo of a" (``configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml``), class
names ``airplane``, ``water_lilly``, ``yin_yang``. Before the forward, the meta-net's parameters (in
``named_parameters`` order) were set to ``0.3 * N(0, 1)`` and ``0.1 * N(0, 1)`` was added to the context, both
drawn from ``RandomState(1)``, which then drew the two 32x32 images (labels 1, 2).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import make_trainer, train_args
from tests.test_parity_taskres import write_parity_clip
from trainers.backbone import TextTower
from trainers.cocoop import ConditionalPromptLearner

CLASSNAMES = ["airplane", "water_lilly", "yin_yang"]
# PromptLearner.__init__: ctx_vectors = token_embedding(tokenize("a photo of a"))[0, 1:5], first 5 columns.
ORIGINAL_CTX_INIT = [[0.05197144, 0.000287056, -0.05368042, -0.007469177, 0.003757477],
                     [-0.02879333, 5.036592e-05, -0.01582336, 0.02099609, 0.02560425],
                     [0.01073456, 0.05505371, 0.02149963, -0.006858826, 0.03085327],
                     [0.05197144, 0.000287056, -0.05368042, -0.007469177, 0.003757477]]
# PromptLearner.meta_net: Linear(vis_dim, vis_dim // 16) - ReLU - Linear(vis_dim // 16, ctx_dim).
ORIGINAL_META_SHAPES = {"linear1.weight": (2, 32), "linear1.bias": (2,), "linear2.weight": (64, 2),
                        "linear2.bias": (64,)}
ORIGINAL_META_PARAMS = 258
# CustomCLIP.forward (eval): logits; (train): F.cross_entropy; then the gradients.
ORIGINAL_LOGITS = [[6.642337, 27.9595, 28.4129], [8.042273, 29.75979, 30.66219]]
ORIGINAL_LOSS = 0.6428945
ORIGINAL_CTX_GRAD = [[0.01807712, -0.01349961, -0.01416753], [0.01627291, -0.0131819, -0.01337484],
                     [0.01808483, -0.01513016, -0.01479509], [0.02046132, -0.0138877, -0.0148757]]  # ctx.grad[:, :3]
ORIGINAL_LINEAR2_BIAS_GRAD = [0.07289618, -0.05569936, -0.05721314, 0.08125582]  # meta_net.linear2.bias.grad[:4]
ORIGINAL_LINEAR1_WEIGHT_GRAD = [[0.0, 0.0, 0.0], [-0.0008347353, 0.005796735, 0.009631291]]  # linear1.weight.grad[:, :3]


@pytest.fixture(scope="module")
def trainer(data_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cocoop_parity")
    clip = write_parity_clip(str(tmp / "parity-clip.pt"))
    argv = train_args(data_root, clip, str(tmp / "run"), trainer="CoCoOp",
                      extra=("--config-file", "configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml"))
    return make_trainer(argv + ["TRAINER.COCOOP.PREC", "fp32"])


def test_published_config_initialises_the_context_like_the_original(trainer):
    head = trainer.model.head
    assert head.n_ctx == 4 and tuple(head.ctx.shape) == (4, 64)
    torch.testing.assert_close(head.ctx.detach()[:, :5], torch.tensor(ORIGINAL_CTX_INIT), rtol=0, atol=1e-7)
    shapes = {k: tuple(v.shape) for k, v in head.meta_net.state_dict().items()}
    assert shapes == ORIGINAL_META_SHAPES
    assert sum(p.numel() for p in head.meta_net.parameters()) == ORIGINAL_META_PARAMS
    # The original trains every parameter of its prompt learner: the context and the meta-net.
    assert sorted(n for n, p in head.named_parameters() if p.requires_grad) == sorted(trainer.spec.trainable)


@pytest.mark.parametrize("truncate", [True, False])
def test_logits_loss_and_gradients_match_the_original(trainer, truncate):
    """Our batched forward (truncated prompts, shared prefix) and the plain 77-token one both give the
    original's per-image loop's numbers."""
    head = ConditionalPromptLearner(TextTower(trainer.clip.model), trainer.clip.tokenize, CLASSNAMES, 16,
                                    "a photo of a", trainer.clip.embed_dim, trainer.clip.logit_scale, truncate=truncate)
    assert head.share_prefix == truncate and (head.tokens.shape[1] == 77) != truncate
    rs = np.random.RandomState(1)
    with torch.no_grad():
        for _, p in head.meta_net.named_parameters():
            p.copy_(torch.tensor(rs.standard_normal(tuple(p.shape)) * 0.3))
        head.ctx.add_(torch.tensor(rs.standard_normal(tuple(head.ctx.shape)) * 0.1, dtype=torch.float32))
    images = torch.tensor(rs.standard_normal((2, 3, 32, 32)), dtype=torch.float32)
    features = trainer.clip.encode_image(images)
    with torch.no_grad():
        torch.testing.assert_close(head(features), torch.tensor(ORIGINAL_LOGITS), rtol=0, atol=1e-4)
    loss = F.cross_entropy(head(features), torch.tensor([1, 2]))
    loss.backward()
    assert abs(loss.item() - ORIGINAL_LOSS) < 1e-5
    torch.testing.assert_close(head.ctx.grad[:, :3], torch.tensor(ORIGINAL_CTX_GRAD), rtol=0, atol=1e-5)
    torch.testing.assert_close(head.meta_net.linear2.bias.grad[:4], torch.tensor(ORIGINAL_LINEAR2_BIAS_GRAD),
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(head.meta_net.linear1.weight.grad[:, :3], torch.tensor(ORIGINAL_LINEAR1_WEIGHT_GRAD),
                               rtol=0, atol=1e-5)
