"""CoOp's text side: encoding prompts up to the longest EOT equals the full 77-token computation."""
import copy

import pytest
import torch

from tests.conftest import make_trainer, train_args
from trainers.coop import PromptLearner


def _coop(data_root, clip, out, position="end", csc=False, ctx_init="", truncate=True):
    extra = ["--config-file", "configs/trainers/CoOp/rn50.yaml"]
    argv = train_args(data_root, clip, out, trainer="CoOp", extra=extra)
    argv += ["TRAINER.COOP.PREC", "fp32", "TRAINER.COOP.CLASS_TOKEN_POSITION", position,
             "TRAINER.COOP.CSC", str(csc), "TRAINER.COOP.CTX_INIT", ctx_init,
             "TRAINER.COOP.TRUNCATE_CONTEXT", str(truncate)]
    return make_trainer(argv)


@pytest.mark.parametrize("position,csc,ctx_init", [("end", False, ""), ("middle", True, ""),
                                                   ("front", False, "a photo of a")])
def test_truncated_prompts_give_the_full_length_logits_and_gradients(data_root, tiny_clip, tmp_path, position, csc,
                                                                     ctx_init):
    trainer = _coop(data_root, tiny_clip, str(tmp_path / "t"), position, csc, ctx_init)
    short = trainer.model.head
    assert isinstance(short, PromptLearner)
    full = PromptLearner(short.tower, trainer.clip.tokenize, trainer.classnames, short.n_ctx, ctx_init, csc,
                         position, short.logit_scale, truncate=False)
    with torch.no_grad():
        short.ctx.normal_(std=0.5)  # a trained-looking context, not the init
        full.ctx.copy_(short.ctx)
    assert short.tokens.shape[1] < 40 and full.tokens.shape[1] == 77
    assert short.share_prefix == (position == "end" and not csc) and not full.share_prefix
    feats = torch.randn(6, trainer.clip.embed_dim)
    a, b = short(feats), full(feats)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    a.logsumexp(1).sum().backward()
    b.logsumexp(1).sum().backward()
    torch.testing.assert_close(short.ctx.grad, full.ctx.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_truncation_can_be_turned_off_and_training_matches(data_root, tiny_clip, tmp_path):
    """Two epochs from the same seed with and without truncation end at the same context."""
    runs = []
    for truncate in (True, False):
        t = _coop(data_root, tiny_clip, str(tmp_path / f"t{truncate}"), truncate=truncate)
        t.cfg.defrost()
        t.cfg.FEATURE_CACHE.DIR = str(tmp_path / "cache")
        t.cfg.freeze()
        torch.manual_seed(0)
        t.train()
        runs.append(copy.deepcopy(t.model.head.ctx.detach()))
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-4, atol=1e-5)
