"""The method seam: every method declares its recipe, label and table position on its trainer class, in its own
module; shared pieces (templates, cosine logits, checkpoint checks) live once, outside the method modules; no
method module imports another."""
import ast

import pytest
import torch

import trainers
from scripts.reproduce.recipes import PAPER_METHODS, RECIPES, get_recipe
from scripts.reproduce.runs import recipe_argv

PAPER_LABELS = {"ZeroshotCLIP": "Zero-shot CLIP", "ZeroshotCLIP2": "Zero-shot CLIP (ensemble)",
                "LinearProbeCLIP": "Linear probe", "CoOp": "CoOp", "CLIP_Adapter": "CLIP-Adapter",
                "TipAdapter": "Tip-Adapter", "TipAdapterF": "Tip-Adapter-F", "TaskRes": "TaskRes", "ZSLP": "ZS-LP",
                "CLAP": "CLAP"}


def test_every_recipe_and_label_comes_from_the_trainer_class():
    declared = trainers.declared_methods()
    for name in PAPER_METHODS + ("ZeroshotCLIP2", "ZSLP", "CLAP"):
        cls = declared[name]
        assert get_recipe(name).settings is cls.recipe and get_recipe(name).config == cls.RECIPE_CONFIG
        assert trainers.method_spec(name).label == cls.LABEL == PAPER_LABELS[name]
    # Only classes that declare a recipe config have one; TaskRes* stage 1's is ours, never marked published.
    assert set(RECIPES) == {n for n, c in declared.items() if getattr(c, "RECIPE_CONFIG", None)}
    assert not trainers.method_spec("TaskResEnhancedBase").published_recipe
    assert all(trainers.method_spec(n).published_recipe for n in RECIPES if n != "TaskResEnhancedBase")


def test_a_changed_declaration_changes_the_launcher_command(monkeypatch):
    cls = trainers.declared_methods()["TipAdapterF"]
    before = recipe_argv("TipAdapterF", "eurosat", 4, "ViT-B/16")
    assert before[before.index("OPTIM.MAX_EPOCH") + 1] == "100"
    monkeypatch.setattr(cls, "recipe", staticmethod(lambda d, k: {"OPTIM.LR": 1e-3, "OPTIM.MAX_EPOCH": 7}))
    after = recipe_argv("TipAdapterF", "eurosat", 4, "ViT-B/16")
    assert after[after.index("OPTIM.MAX_EPOCH") + 1] == "7"


@pytest.mark.parametrize("dataset,shots,lr,epochs,alpha", [
    ("imagenet", 16, "0.0002", "200", "0.5"), ("oxford_flowers", 4, "0.002", "100", "1.0"),
    ("caltech101", 8, "0.002", "200", "0.5")])
def test_taskres_recipe_is_the_papers_on_every_backbone(dataset, shots, lr, epochs, alpha):
    for backbone in ("RN50", "ViT-B/16"):
        argv = recipe_argv("TaskRes", dataset, shots, backbone)
        got = [argv[argv.index(k) + 1] for k in ("OPTIM.LR", "OPTIM.MAX_EPOCH", "TRAINER.TaskRes.RESIDUAL_SCALE")]
        assert got == [lr, epochs, alpha]
        assert argv[argv.index("INPUT.SIZE") + 1] == "(224, 224)"


def test_table_order_and_shot_free_methods_are_declared():
    order = {n: trainers.method_spec(n).table_order for n in trainers.declared_methods()}
    ordered = sorted((n for n, o in order.items() if o is not None), key=order.get)
    assert ordered == ["ZeroshotCLIP", "ZeroshotCLIP2", "LinearProbeCLIP", "CoOp", "CLIP_Adapter", "TipAdapter",
                       "TipAdapterF", "TaskRes"]
    shot_free = {n for n in trainers.declared_methods() if trainers.method_spec(n).shot_free}
    assert shot_free == {"ZeroshotCLIP", "ZeroshotCLIP2"}
    assert get_recipe("ZeroshotCLIP").tag("vit_b16", 4) == "vit_b16_zeroshot"


def _imported_modules(module) -> set:
    tree = ast.parse(open(module.__file__).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_no_method_module_imports_another():
    method_modules = {m.__name__ for m in trainers.METHOD_MODULES}
    assert {"trainers.zslp", "trainers.clap", "trainers.taskres", "trainers.tip_adapter"} <= method_modules
    for module in trainers.METHOD_MODULES:
        others = (_imported_modules(module) & method_modules) - {module.__name__}
        assert not others, f"{module.__name__} imports method module(s) {sorted(others)}"
    for shared in ("trainers.templates", "trainers.heads", "trainers.probe", "trainers.text_classifier"):
        assert shared not in method_modules  # no add_config: never registered, never discovered as a method


def test_template_policy_per_method():
    from datasets import IMAGENET_TEMPLATES_SELECT, dataset_templates
    from trainers.probe import original_templates
    from trainers.taskres import taskres_templates
    from trainers.templates import SELECT, SELECT_OWN, templates_for

    select = tuple(IMAGENET_TEMPLATES_SELECT)
    own_in, own_v2, own_dtd = (dataset_templates(d) for d in ("ImageNet", "ImageNetV2", "DescribableTextures"))
    assert taskres_templates("ImageNet") == select + own_in and taskres_templates("ImageNetV2") == select + own_v2
    assert taskres_templates("DescribableTextures") == own_dtd
    assert original_templates("ImageNet") == select + own_in and original_templates("ImageNetV2") == own_v2
    assert templates_for("DescribableTextures", imagenet=SELECT, others=SELECT_OWN) == select + own_dtd
    assert isinstance(taskres_templates("ImageNet"), tuple)  # immutable: a caller cannot extend the policy
    with pytest.raises(ValueError, match="Unknown template policy"):
        templates_for("ImageNet", imagenet="all")


def test_cosine_logits_and_the_heads_that_use_it():
    from trainers.heads import CosineClassifier, cosine_logits
    from trainers.probe import PrototypeProbe
    from trainers.taskres import TaskResHead

    torch.manual_seed(0)
    f, w = torch.randn(5, 8).half(), torch.randn(3, 8) * 4
    expected = 50.0 * (f.float() / f.float().norm(dim=-1, keepdim=True)) @ (w / w.norm(dim=-1, keepdim=True)).t()
    assert torch.allclose(cosine_logits(f, w, 50.0), expected, atol=1e-5)
    for head in (CosineClassifier(w, 50.0), PrototypeProbe(w, 50.0), TaskResHead(w, 0.5, 50.0)):
        assert torch.allclose(head(f), expected, atol=1e-5), type(head).__name__

