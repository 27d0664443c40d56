"""Parity with CoOp's zero-shot CLIP (KaiyangZhou/CoOp@ff61507, ``trainers/zsclip.py``): which templates
``ZeroshotCLIP2`` averages. ImageNet: ``IMAGENET_TEMPLATES_SELECT`` alone (7); every other dataset: those
plus its ``CUSTOM_TEMPLATES`` entry (8)."""
from datasets import IMAGENET_TEMPLATES_SELECT
from tests.conftest import make_trainer, train_args


def test_zeroshot_clip2_uses_the_seven_select_templates_on_imagenet(data_root, tiny_clip, tmp_path):
    t = make_trainer(train_args(data_root, tiny_clip, str(tmp_path / "in"), trainer="ZeroshotCLIP2",
                                dataset="imagenet", shots=1))
    assert t.templates == tuple(IMAGENET_TEMPLATES_SELECT) and len(t.templates) == 7


def test_zeroshot_clip2_adds_the_dataset_template_elsewhere(data_root, tiny_clip, tmp_path):
    t = make_trainer(train_args(data_root, tiny_clip, str(tmp_path / "cal"), trainer="ZeroshotCLIP2",
                                dataset="caltech101", shots=1))
    assert t.templates == tuple(IMAGENET_TEMPLATES_SELECT) + ("a photo of a {}.",)
