"""The method seam: every method is one declaration (``SPEC = declare(...)``) on its trainer class, in its own
module, checked when the module is imported; shared pieces (templates, cosine logits, checkpoint checks) live once,
outside the method modules; no method module imports another."""
import ast
import dataclasses

import pytest
import torch

import trainers
from bookkeeping.recipes import PAPER_METHODS, declared_recipes, get_recipe, recipe_argv
from trainers.base import ClipTrainer
from trainers.spec import CacheRequest, KeyViews, SpecError, declare

PAPER_LABELS = {"ZeroshotCLIP": "Zero-shot CLIP", "ZeroshotCLIP2": "Zero-shot CLIP (ensemble)",
                "LinearProbeCLIP": "Linear probe", "CoOp": "CoOp", "CLIP_Adapter": "CLIP-Adapter",
                "TipAdapter": "Tip-Adapter", "TipAdapterF": "Tip-Adapter-F", "TaskRes": "TaskRes", "ZSLP": "ZS-LP",
                "CLAP": "CLAP"}


def test_every_recipe_and_label_comes_from_the_declaration():
    declared = trainers.declared_methods()
    for name in PAPER_METHODS + ("ZeroshotCLIP2", "ZSLP", "CLAP"):
        spec = trainers.method_spec(name)
        assert spec is declared[name].SPEC
        assert get_recipe(name).settings("eurosat", 4) == spec.settings("eurosat", 4)
        assert get_recipe(name).config == spec.recipe_config
        assert spec.label == PAPER_LABELS[name]
    # Only declarations with a recipe config have a recipe; TaskRes* stage 1's is ours, never marked published.
    assert set(declared_recipes()) == {n for n in declared if trainers.method_spec(n).recipe_config}
    assert not trainers.method_spec("TaskResEnhancedBase").published_recipe
    assert all(trainers.method_spec(n).published_recipe for n in declared_recipes() if n != "TaskResEnhancedBase")
    # An unset label is the trainer name; the launch-only keys are declared by the methods that have them.
    assert trainers.method_spec("TaskResEnhancedBase").label == "TaskResEnhancedBase"
    assert trainers.method_spec("CoOp").launch_only_keys == ("TRAINER.COOP.TRUNCATE_CONTEXT",)
    assert trainers.method_spec("CoCoOp").launch_only_keys == ("TRAINER.COCOOP.PROMPTS_PER_CALL",)
    with pytest.raises(trainers.UnknownMethodError, match="Unknown method 'NoSuch'; known: .*TaskRes"):
        trainers.method_spec("NoSuch")


def test_a_changed_declaration_changes_the_launcher_command(monkeypatch):
    cls = trainers.declared_methods()["TipAdapterF"]
    before = recipe_argv("TipAdapterF", "eurosat", 4, "ViT-B/16")
    assert before[before.index("OPTIM.MAX_EPOCH") + 1] == "100"
    monkeypatch.setattr(cls, "SPEC", cls.SPEC.derive(recipe=lambda d, k: {"OPTIM.LR": 1e-3, "OPTIM.MAX_EPOCH": 7}))
    after = recipe_argv("TipAdapterF", "eurosat", 4, "ViT-B/16")
    assert after[after.index("OPTIM.MAX_EPOCH") + 1] == "7"


def test_a_wrong_declaration_fails_when_it_is_made():
    with pytest.raises(SpecError, match=r"^unknown MethodSpec field\(s\): lable \(did you mean label\?\)$"):
        declare(config_node="X", lable="X")
    with pytest.raises(SpecError, match="selects_on_vals \\(did you mean selects_on_val"):
        trainers.method_spec("TaskRes").derive(selects_on_vals=True)
    with pytest.raises(SpecError, match="trainable=None needs a trainable_pattern"):
        declare(config_node="X", trainable=None)
    with pytest.raises(SpecError, match="must be a tuple"):
        declare(config_node="X", trainable="bias")
    with pytest.raises(SpecError, match="MethodSpec.cache must be a CacheRequest"):
        declare(config_node="X", cache={"train_views": "pool"})
    # A leftover (or misspelt) UPPER_CASE class attribute is no longer ignored: the class is refused when made.
    with pytest.raises(SpecError, match=r"Leftover: SELECT_ON_VAL \(SPEC field selects_on_val\?\) is no trainer"):
        type("Leftover", (ClipTrainer,), {"SPEC": declare(config_node="X"), "SELECT_ON_VAL": True})
    with pytest.raises(SpecError, match="Loose.SPEC must be made by declare"):
        type("Loose", (ClipTrainer,), {"SPEC": {"config_node": "X"}})


def test_cache_requests_are_consistent_when_declared():
    assert CacheRequest().train_view_count(0, 50) == 50 and CacheRequest().train_view_count(5, 50) == 5
    assert CacheRequest(train_views="pool", pool=20).train_view_count(0, 300) == 20
    assert CacheRequest(train_views="plain").train_view_count(7, 300) == 1
    assert CacheRequest(splits=("test",), train_views="none").train_view_count(0, 3) == 0
    with pytest.raises(SpecError, match="pool > 0"):
        CacheRequest(train_views="pool")
    with pytest.raises(SpecError, match="must include 'test'"):
        CacheRequest(splits=("train", "val"))
    with pytest.raises(SpecError, match="disagree"):  # training views declared, train split not read
        CacheRequest(splits=("val", "test"))
    with pytest.raises(SpecError, match="train_views must be one of"):
        CacheRequest(train_views="augmented")
    keys = KeyViews(crop_scale=(0.5, 1.0), count_key="AUGMENT_EPOCH", seed_offset=3)
    assert CacheRequest(train_views="none", keys=keys).splits == ("train", "val", "test") and keys.seed(-1) == 3


def test_the_cache_requests_of_the_methods():
    """What each method reads, as the cost model and training see it (one declaration, no per-method code)."""
    req = {n: trainers.method_spec(n).cache for n in trainers.declared_methods()}
    assert req["ZeroshotCLIP"].splits == ("test",) and req["ZeroshotCLIP2"] == req["ZeroshotCLIP"]
    assert req["LinearProbeCLIP"].train_views == "plain"
    assert (req["ZSLP"].pool, req["CLAP"].pool, req["LPP"].pool) == (20, 20, 1)
    assert req["TipAdapter"].train_views == "none" and req["TipAdapterF"].train_views == "epoch"
    assert req["TipAdapter"].keys is req["TipAdapterF"].keys and req["TipAdapter"].keys.crop_scale == (0.5, 1.0)
    assert {n for n, r in req.items() if r.keys is not None} == {"TipAdapter", "TipAdapterF", "GDA"}
    assert all(r == CacheRequest() for n, r in req.items()
               if n in ("TaskRes", "CoOp", "CoCoOp", "CLIP_Adapter", "CLIP_LoRA", "TaskResEnhancedBase"))


def test_no_legacy_declarations_are_left():
    """Every registered class declares SPEC and nothing else UPPER_CASE; nothing reads a legacy attribute."""
    legacy = ("CONFIG_NODE", "CHECKPOINT_NAME", "TRAINABLE", "TRAINING_FREE", "FEATURE_SPLITS", "AUGMENTED_TRAIN_VIEWS",
              "TRAIN_VIEWS", "CLASS_AGNOSTIC", "LABEL", "RECIPE_CONFIG", "SELECTS_ON_VAL", "SHOT_FREE", "TABLE_ORDER",
              "EXTRA_LABELS", "LEARNABLE_KEYS", "VARIANTS", "PUBLISHED_RECIPE", "ADAPTED_ENCODERS")
    for name, cls in trainers.declared_methods().items():
        assert "SPEC" in vars(cls) and not [a for a in legacy if hasattr(cls, a)], name
        assert dataclasses.is_dataclass(cls.SPEC) and not hasattr(cls, "recipe"), name


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
                       "TipAdapterF", "TaskRes", "GDA"]
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
    from trainers.probe import PrototypeProbeTrainer
    from trainers.taskres import TaskRes
    from trainers.templates import SELECT, SELECT_OWN, templates_for

    def taskres_templates(d):
        return templates_for(d, **TaskRes.template_policy)

    def original_templates(d):
        return templates_for(d, **PrototypeProbeTrainer.template_policy)

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

