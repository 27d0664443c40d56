"""The backbone loader: file formats, names, precision, offline errors."""
import os
import warnings

import pytest
import torch

from trainers.backbone import BackboneError, load_backbone, openai_weights_path
from trainers.random_clip import build_random_clip

CPU = torch.device("cpu")


def test_state_dict_file_loads_with_its_dimensions(tiny_clip, tiny_clip_rn):
    vit = load_backbone(tiny_clip, CPU, "fp32")
    rn = load_backbone(tiny_clip_rn, CPU, "fp32")
    assert (vit.embed_dim, vit.image_size) == (32, 32) and (rn.embed_dim, rn.image_size) == (48, 64)
    assert vit.encode_image(torch.zeros(2, 3, 32, 32)).shape == (2, 32)
    assert vit.encode_text(["a photo of a dog.", "a cat"]).dtype == torch.float32
    assert not any(p.requires_grad for p in vit.model.parameters())


def test_torchscript_archive_loads_like_the_state_dict(tiny_clip, tmp_path):
    model = load_backbone(tiny_clip, CPU, "fp32").model
    images, text = torch.ones(2, 3, 32, 32), torch.zeros(2, 77, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace_module(model, {"encode_image": (images,), "encode_text": (text,)})
        path = str(tmp_path / "tiny-jit.pt")
        torch.jit.save(traced, path)  # (deprecated in the newest torch; OpenAI's .pt files are such archives)
    from_jit = load_backbone(path, CPU, "fp32")
    images = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(from_jit.encode_image(images), load_backbone(tiny_clip, CPU, "fp32").encode_image(images))


def test_fp16_request_on_cpu_runs_fp32_with_one_notice_per_process(tiny_clip, caplog, monkeypatch):
    from trainers import backbone

    monkeypatch.setattr(backbone, "_NOTICES_SHOWN", {})
    with caplog.at_level("WARNING"):
        clip = load_backbone(tiny_clip, CPU, "fp16")
        load_backbone(tiny_clip, CPU, "fp16")
    assert clip.precision == "fp32" and clip.dtype == torch.float32
    assert sum("fp16 needs a CUDA device" in r.getMessage() for r in caplog.records) == 1


def test_openai_name_offline_names_the_file_and_leaves_nothing_behind(tmp_path, monkeypatch):
    import urllib.error

    import open_clip.pretrained

    def offline(url, cache_dir=None):
        open(os.path.join(cache_dir, os.path.basename(url)), "wb").write(b"partial")
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained_from_url", offline)
    expected = openai_weights_path("RN50", str(tmp_path))
    assert expected == str(tmp_path / "RN50.pt")
    with pytest.raises(BackboneError) as exc:
        load_backbone("RN50", CPU, "fp32", weights_dir=str(tmp_path))
    assert expected in str(exc.value) and "--backbone" in str(exc.value)
    assert not os.path.exists(expected)


def test_cached_openai_file_is_used_without_download(tmp_path, monkeypatch):
    import open_clip.pretrained

    state = {k: v.half() if v.is_floating_point() else v for k, v in build_random_clip("vit").state_dict().items()}
    torch.save(state, tmp_path / "ViT-B-16.pt")  # stands in for the real file at the expected name
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained_from_url",
                        lambda *a, **k: pytest.fail("must not download"))
    clip = load_backbone("ViT-B/16", CPU, "fp32", weights_dir=str(tmp_path))
    assert clip.embed_dim == 32


@pytest.mark.parametrize("content, message", [
    (b"not a checkpoint at all", "Cannot read CLIP checkpoint"),
    (None, "is not a CLIP checkpoint"),
])
def test_a_file_that_is_not_clip_is_refused(tmp_path, content, message):
    path = tmp_path / "weird.pt"
    if content is None:
        torch.save({"weight": torch.zeros(3)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(BackboneError, match=message):
        load_backbone(str(path), CPU, "fp32")


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(BackboneError, match="Valid: RN50, RN101"):
        load_backbone("RN42", CPU)
    with pytest.raises(BackboneError, match="Unknown open_clip architecture"):
        load_backbone("NoSuchArch:openai", CPU)
    with pytest.raises(BackboneError, match="Unknown precision"):
        load_backbone("RN50", CPU, "int8")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("prec, dtype", [("fp16", torch.float16), ("fp32", torch.float32), ("amp", torch.float32)])
def test_precisions_on_cuda(tiny_clip, prec, dtype):
    clip = load_backbone(tiny_clip, torch.device("cuda"), prec)
    assert clip.dtype == dtype
    assert clip.encode_image(torch.zeros(2, 3, 32, 32, device="cuda")).dtype == torch.float32
