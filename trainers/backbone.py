"""The one door to a CLIP backbone: OpenAI names, open_clip ``name:pretrained`` pairs, or checkpoint files.

``load_backbone`` returns a frozen ``ClipBackbone``. OpenAI weights are the same files the original ``clip``
package uses (``~/.cache/clip/RN50.pt`` ...), so users' existing downloads are found; open_clip supplies the
architectures.
"""
import contextlib
import hashlib
import logging
import os
import warnings
import zipfile
from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from engine.libraries import import_open_clip, torch_load

logger = logging.getLogger(__name__)

# OpenAI name -> open_clip architecture name.
OPENAI_MODELS = {
    "RN50": "RN50", "RN101": "RN101", "RN50x4": "RN50x4", "RN50x16": "RN50x16", "RN50x64": "RN50x64",
    "ViT-B/32": "ViT-B-32", "ViT-B/16": "ViT-B-16", "ViT-L/14": "ViT-L-14", "ViT-L/14@336px": "ViT-L-14-336",
}
PRECISIONS = ("fp16", "fp32", "amp")
DEFAULT_WEIGHTS_DIR = os.path.expanduser(os.environ.get("CLIP_WEIGHTS_DIR", "~/.cache/clip"))


def uses_amp(precision: str, device: torch.device) -> bool:
    """Whether ``precision`` autocasts to fp16 and scales gradients on ``device``: AMP on CUDA only. Elsewhere
    "amp" runs in fp32 (as "fp16" does, see ``resolve_precision``), so CPU results stay the fp32 ones."""
    return precision == "amp" and device.type == "cuda"


def grad_scaler(precision: str, device: torch.device):
    """The gradient scaler of an AMP run (None otherwise). ``torch.amp.GradScaler`` exists from torch 2.3 on; the
    oldest torch declared (2.1) has only ``torch.cuda.amp.GradScaler``, the same class for CUDA."""
    if not uses_amp(precision, device):
        return None
    return torch.amp.GradScaler(device.type) if hasattr(torch.amp, "GradScaler") else torch.cuda.amp.GradScaler()


def autocast_context(device: torch.device, enabled: bool):
    """fp16 autocast when enabled (AMP on CUDA); no context at all otherwise: torch < 2.2 refuses an fp16
    autocast on the CPU even with ``enabled=False``."""
    return torch.autocast(device_type=device.type, dtype=torch.float16) if enabled else contextlib.nullcontext()


class BackboneError(RuntimeError):
    """The backbone name, file or weights cannot be used; the message says how to fix it."""


def _final_projection(visual: nn.Module, name: str) -> Tuple[nn.Module, str]:
    """Where the image tower's final projection is: a ResNet's attention-pool ``c_proj`` (a Linear) or a ViT's
    ``proj`` matrix, as ``(owner, attribute)``."""
    pool = getattr(visual, "attnpool", None)
    if isinstance(getattr(pool, "c_proj", None), nn.Linear):
        return pool, "c_proj"
    if isinstance(getattr(visual, "proj", None), torch.Tensor):
        return visual, "proj"
    raise BackboneError(f"{name}: no final image projection found (a ResNet attnpool.c_proj or a ViT proj); "
                        "pre-projection features need an OpenAI-style CLIP image tower")


class ClipBackbone:
    """A frozen CLIP model with the operations methods need.

    ``encode_image``/``encode_text`` return float32 features whatever the weights' precision, so
    method heads always compute in fp32 (the original keeps its trainable residual in fp32 too).
    ``grad=True`` keeps the graph (a method that trains through the encoder, e.g. LoRA).
    """

    def __init__(self, model: nn.Module, tokenizer: Callable, name: str, precision: str, device: torch.device):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        self.precision = precision
        self.device = device
        self._fingerprint: Optional[str] = None

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1])

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())

    @property
    def image_size(self) -> int:
        size = self.model.visual.image_size
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    @contextlib.contextmanager
    def _encoding(self, grad: bool):
        """No graph for a frozen encoder (the default); autocast under AMP."""
        with contextlib.nullcontext() if grad else torch.no_grad():
            with autocast_context(self.device, uses_amp(self.precision, self.device)):
                yield

    def encode_image(self, images: torch.Tensor, grad: bool = False) -> torch.Tensor:
        with self._encoding(grad):
            return self.model.encode_image(images.to(self.device, self.dtype)).float()

    def encode_image_pre_projection(self, images: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """Image features *before* the encoder's final linear projection (``image_projection``), float32.

        For a method that trains that projection (ProLIP): everything below it is frozen, so these features
        can be cached. The projection is the identity during the call (the model is unchanged after).
        """
        with _image_projection_removed(self.model.visual, self.name):
            return self.encode_image(images, grad)

    def image_projection(self) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The image encoder's final projection as ``y = x @ W^T + b``: float32 copies of ``W`` ``[embed, width]``
        and ``b`` (``None`` for a ViT's bias-free ``proj``; a ResNet's attention-pool ``c_proj`` has one)."""
        owner, attr = _final_projection(self.model.visual, self.name)
        proj = getattr(owner, attr)
        if attr == "proj":
            return proj.detach().float().t().clone(), None
        return proj.weight.detach().float().clone(), None if proj.bias is None else proj.bias.detach().float().clone()

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts)).to(self.device)

    def encode_tokens(self, tokens: torch.Tensor, grad: bool = False) -> torch.Tensor:
        with self._encoding(grad):
            return self.model.encode_text(tokens.to(self.device)).float()

    def _token_batches(self, texts: Sequence[str], batch_size: int):
        return (self.tokenize(texts[start:start + batch_size]) for start in range(0, len(texts), batch_size))

    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        return torch.cat([self.encode_tokens(tokens) for tokens in self._token_batches(texts, batch_size)])

    def encode_text_pooled(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Text features before the final projection (OpenAI-style towers only), float32."""
        tower = TextTower(self.model)
        with self._encoding(grad=False):
            return torch.cat([tower.pooled(tower.embed_tokens(tokens), tokens)
                              for tokens in self._token_batches(texts, batch_size)])

    def fingerprint(self) -> str:
        """Content hash of the weights: the feature cache's guarantee that other weights never reuse features."""
        if self._fingerprint is None:
            h = hashlib.sha1(self.name.encode())
            for key, tensor in sorted(self.model.state_dict().items()):
                h.update(key.encode())
                h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint


@contextlib.contextmanager
def _image_projection_removed(visual: nn.Module, name: str):
    """The image tower with its final projection replaced by the identity, restored on exit."""
    owner, attr = _final_projection(visual, name)
    saved = getattr(owner, attr)
    stand_in = None  # a ViT multiplies by proj only when it is not None
    if attr == "c_proj":  # a ResNet's attention pool passes c_proj's weight and bias to its attention call
        stand_in = nn.Linear(saved.in_features, saved.in_features).to(saved.weight.device, saved.weight.dtype)
        nn.init.eye_(stand_in.weight)
        nn.init.zeros_(stand_in.bias)
        stand_in.requires_grad_(False)
    setattr(owner, attr, stand_in)
    try:
        yield
    finally:
        setattr(owner, attr, saved)


class PreProjectionEncoder:
    """A backbone whose ``encode_image`` gives the features before the image projection (and ``embed_dim`` their
    width), for the feature cache: same weights, other features, so its own ``name`` and ``fingerprint`` keep
    the cache's entries apart. Everything else is the backbone's."""

    def __init__(self, backbone: ClipBackbone):
        self.backbone = backbone
        self.name = self.name_for(backbone.name)

    @staticmethod
    def name_for(backbone_name: str) -> str:
        """The name its cache entries carry (``key["backbone"]``), e.g. for the grid's cost model."""
        return f"{backbone_name} (pre-projection)"

    def __getattr__(self, attr):
        return getattr(self.backbone, attr)

    @property
    def embed_dim(self) -> int:
        return int(self.backbone.image_projection()[0].shape[1])

    def fingerprint(self) -> str:
        return self.backbone.fingerprint() + "-pre"

    def encode_image(self, images: torch.Tensor, grad: bool = False) -> torch.Tensor:
        return self.backbone.encode_image_pre_projection(images, grad)


_NOTICES_SHOWN = {}


def resolve_precision(precision: str, device: torch.device) -> str:
    """fp16 needs CUDA; on CPU an fp16 request runs in fp32 with one warning (the original crashes)."""
    if precision not in PRECISIONS:
        raise BackboneError(f"Unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "fp16" and device.type != "cuda":
        if not _NOTICES_SHOWN.get("fp16_on_cpu"):  # once per process, not once per trainer built
            logger.warning("fp16 needs a CUDA device; running in fp32 on the CPU")
            _NOTICES_SHOWN["fp16_on_cpu"] = True
        return "fp32"
    return precision


def _position_grid(sd: dict) -> Tuple[str, int]:
    """The image tower's position-embedding key (one class token, then the grid) and the pixels per grid cell:
    a ViT's patch size, or 32 for a ResNet (32x downsampling before the attention pool)."""
    if "visual.proj" in sd:
        return "visual.positional_embedding", int(sd["visual.conv1.weight"].shape[-1])
    return "visual.attnpool.positional_embedding", 32


def resize_vision_positions(state_dict: dict, input_size: int) -> dict:
    """Resample the image tower's position embeddings of an OpenAI state dict to ``input_size`` pixels."""
    key, step = _position_grid(state_dict)
    if input_size % step:
        tower = f"the ViT patch size {step}" if key == "visual.positional_embedding" else "32 (ResNet CLIP)"
        raise BackboneError(f"INPUT.SIZE {input_size} is not a multiple of {tower}")
    pos, new_grid = state_dict[key], input_size // step
    old_grid = int(round((pos.shape[0] - 1) ** 0.5))
    if old_grid == new_grid:
        return state_dict
    grid = pos[1:].float().reshape(1, old_grid, old_grid, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(new_grid * new_grid, -1).to(pos.dtype)
    return {**state_dict, key: torch.cat([pos[:1], grid])}


def _read_checkpoint_file(path: str) -> dict:
    """State dict from an OpenAI TorchScript archive or a plain (possibly wrapped) state dict file."""
    try:  # OpenAI's .pt files are TorchScript archives: zip files with a ``code/`` folder
        with zipfile.ZipFile(path) as zf:
            torchscript = any("/code/" in name for name in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        torchscript = False
    if torchscript:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            try:
                state = torch.jit.load(path, map_location="cpu").state_dict()
            except RuntimeError as err:
                raise BackboneError(f"Cannot read CLIP TorchScript archive {path} ({err})") from err
        # Derived buffers, not weights (a traced open_clip model stores its causal mask).
        return {k: v for k, v in state.items() if not k.endswith("attn_mask")}
    try:
        obj = torch_load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise BackboneError(f"Cannot read CLIP checkpoint {path} ({err}). Expected an OpenAI CLIP .pt file "
                            "(TorchScript archive) or a state dict saved with torch.save.") from err
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or "text_projection" not in {k.removeprefix("module.") for k in obj}:
        raise BackboneError(f"{path} is not a CLIP checkpoint (no 'text_projection' weight)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def checkpoint_image_size(path: str) -> int:
    """The image side a CLIP checkpoint file was trained at, from its position embeddings."""
    sd = _read_checkpoint_file(path)
    key, step = _position_grid(sd)
    return round((sd[key].shape[0] - 1) ** 0.5) * step


def openai_weights_path(name: str, weights_dir: str = DEFAULT_WEIGHTS_DIR) -> str:
    """Where an OpenAI model's file is looked for (the original ``clip`` package's cache)."""
    from open_clip.pretrained import get_pretrained_url

    return os.path.join(weights_dir, os.path.basename(get_pretrained_url(OPENAI_MODELS[name], "openai")))


def fetch_openai_weights(name: str, weights_dir: str) -> str:
    from open_clip.pretrained import download_pretrained_from_url, get_pretrained_url

    url = get_pretrained_url(OPENAI_MODELS[name], "openai")
    target = openai_weights_path(name, weights_dir)
    if os.path.isfile(target):
        return target
    logger.info("Downloading %s weights to %s", name, target)
    try:
        return download_pretrained_from_url(url, cache_dir=weights_dir)
    except Exception as err:
        if os.path.exists(target):
            os.remove(target)  # never leave a partial file that looks like weights
        raise BackboneError(
            f"CLIP weights for {name} are not at {target} and could not be downloaded ({err}). "
            f"Download {url} on a machine with internet access and copy it to {target} "
            "(or set CLIP_WEIGHTS_DIR), or pass --backbone /path/to/the/file.pt") from err


def load_backbone(name: str, device: torch.device, precision: str = "fp16", input_size: Optional[int] = None,
                  weights_dir: str = DEFAULT_WEIGHTS_DIR) -> ClipBackbone:
    """Load a frozen CLIP backbone.

    ``name``: an OpenAI name (``RN50``, ``ViT-B/16``, ...), a path to a checkpoint file (OpenAI
    TorchScript archive or state dict), or an open_clip ``architecture:pretrained`` pair (e.g.
    ``ViT-B-32:laion2b_s34b_b79k``). ``input_size``: image side in pixels (INPUT.SIZE); position
    embeddings are resampled when it differs from the model's native size.
    """
    open_clip = import_open_clip()

    if not name:
        raise BackboneError("No backbone given: set --backbone or MODEL.BACKBONE.NAME (e.g. RN50)")
    device = torch.device(device)
    precision = resolve_precision(precision, device)
    weights = "fp16" if precision == "fp16" else "fp32"
    if os.path.isfile(name) or name in OPENAI_MODELS:
        from open_clip.model import build_model_from_openai_state_dict
        from open_clip.tokenizer import SimpleTokenizer

        state = _read_checkpoint_file(name if os.path.isfile(name) else fetch_openai_weights(name, weights_dir))
        if input_size:
            state = resize_vision_positions(state, input_size)
        # The weights in fp16 as CLIP ships them, or in fp32.
        model = build_model_from_openai_state_dict(state, cast_dtype=torch.float16 if weights == "fp16" else None)
        if weights == "fp32":
            model = model.float()
        tokenizer = SimpleTokenizer(context_length=model.context_length)
    elif name.startswith(("hf-hub:", "local-dir:")):
        model = open_clip.create_model(name, precision=weights, device="cpu")
        tokenizer = open_clip.get_tokenizer(name)
    elif ":" in name:
        arch, tag = name.split(":", 1)
        if arch not in open_clip.list_models():
            raise BackboneError(f"Unknown open_clip architecture {arch!r}; see open_clip.list_models()")
        try:
            model = open_clip.create_model(arch, pretrained=tag, precision=weights, device="cpu",
                                           force_image_size=input_size)
        except Exception as err:
            raise BackboneError(f"open_clip could not load {name} ({err}). Check the pretrained tag "
                                f"(open_clip.list_pretrained()) and that the weights are cached or downloadable.") from err
        tokenizer = open_clip.get_tokenizer(arch)
    else:
        hint = " (no such file)" if os.sep in name or name.endswith((".pt", ".pth", ".bin")) else ""
        raise BackboneError(
            f"Unknown backbone {name!r}{hint}. Valid: {', '.join(OPENAI_MODELS)}, an open_clip "
            "'architecture:pretrained' pair, or a path to a CLIP checkpoint file.")
    model = model.to(device)
    logger.info("Backbone %s loaded (%s, %s, input %s px)", name, precision, device,
                getattr(model.visual, "image_size", "?"))
    return ClipBackbone(model, tokenizer, name, precision, device)


class TextTower(nn.Module):
    """The text encoder's parts, for methods that feed their own token embeddings (CoOp) or tune the
    projection (TaskRes* base). Only OpenAI-style towers (token embedding + transformer + final norm
    + projection matrix) are supported; others fail with a clear message."""

    def __init__(self, clip_model: nn.Module):
        super().__init__()
        needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")
        missing = [n for n in needed if getattr(clip_model, n, None) is None]
        if missing or isinstance(clip_model.text_projection, nn.Linear):
            raise BackboneError("This method needs an OpenAI-style CLIP text tower (token embedding, "
                                f"transformer, ln_final, projection matrix); this backbone lacks {missing or 'a matrix projection'}")
        for part in needed:
            setattr(self, part, getattr(clip_model, part))
        self.register_buffer("attn_mask", clip_model.attn_mask, persistent=False)

    @property
    def dtype(self) -> torch.dtype:
        return self.positional_embedding.dtype

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(tokens).to(self.dtype)

    def pooled(self, token_embeddings: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Final-norm features at the end-of-text token, before the projection (float32), of ``[N, L, width]`` token
        embeddings, any ``L`` up to the context length (the positional embedding and causal mask cut to ``L``)."""
        length = token_embeddings.shape[1]
        x = token_embeddings.to(self.dtype) + self.positional_embedding[:length].to(self.dtype)
        mask = self.attn_mask
        x = self.transformer(x, attn_mask=None if mask is None else mask[:length, :length])
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)].float()

    def forward(self, token_embeddings: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.pooled(token_embeddings, tokens) @ self.text_projection.float()
