"""Feature networks for the evaluation metrics, and where their weights are looked for.

Three backbones, named in every metric key that uses them:

- "evalnet": the pipeline's own evaluation classifier (`data/evalnet/evalnet.pt`, trained by the
  `eval_net` stage on real training images only). Always available offline; its 128-d penultimate
  layer is the feature space of `fid_evalnet`, `kid_evalnet` and precision/recall/density/coverage.
- "inception": clean-fid's Inception-V3 (the TorchScript file `inception-2015-12-05.pt`, the
  standard FID network). Used only when that file is on disk: at `evaluate.inception_weights`
  (the file, or a folder holding it), else in the user's own cache directories (`inception_dirs`:
  `$XDG_CACHE_HOME/lsdm` or `~/.cache/lsdm`, then torch hub's `checkpoints`). Never in clean-fid's
  own cache, `/tmp`, unless named: a TorchScript file is code, and any local user can write there.
- "lpips": the `lpips` package's LPIPS, whose linear layers ship inside the package and whose
  ImageNet backbone (AlexNet/VGG16/SqueezeNet) torchvision loads from its checkpoint directory,
  `$TORCH_HOME/hub/checkpoints` (`torch.hub.get_dir()`).

Nothing here ever downloads: each loader checks `os.path.exists` on the exact file the library
would otherwise fetch, and when a file is missing returns `None` plus a sentence saying which file
was looked for where. The metrics then record `null` with that sentence, never a number from a
different network.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

INCEPTION_FILE = "inception-2015-12-05.pt"  # the name clean-fid's InceptionV3W loads from a folder
INCEPTION_DIM = 2048


def _no_download(*args, **kwargs):
    raise RuntimeError("lsdm never downloads weights; place the file locally (see lsdm/evaluation/features.py)")


# ---------------------------------------------------------------- evalnet


@torch.no_grad()
def evalnet_features(evalnet: nn.Module, images: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """[N, C, H, W] images in [0, 1] -> [N, 128] float64 evalnet features (native resolution:
    the net was trained on it, so no resizing)."""
    feats = [evalnet.features(images[i : i + batch_size]).double().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(feats).numpy()


# ---------------------------------------------------------------- Inception (clean-fid)


def find_inception(path: str | None) -> tuple[Path | None, str | None]:
    """The Inception TorchScript file to use, or None and why not.

    `path` (the `evaluate.inception_weights` param) may name the file or a folder holding
    `inception-2015-12-05.pt`; when it is null, the folders of `inception_dirs()` are checked.
    """
    if path:
        p = Path(path).expanduser()
        candidates = [p / INCEPTION_FILE] if p.is_dir() else [p]
    else:
        candidates = [d / INCEPTION_FILE for d in inception_dirs()]
    for c in candidates:
        if os.path.exists(c) and os.path.isfile(c):
            return c.resolve(), None
    where = " or ".join(str(c) for c in candidates)
    how = (
        "named by evaluate.inception_weights"
        if path
        else "the user's cache directories; evaluate.inception_weights is null"
    )
    return None, f"{INCEPTION_FILE} not found at {where} ({how}); lsdm never downloads weights"


def inception_dirs() -> list[Path]:
    """Where the Inception file is looked for by default: folders only this user writes, never /tmp.

    `$XDG_CACHE_HOME/lsdm` (`~/.cache/lsdm` when unset or not absolute, as the XDG spec says), then
    torch hub's checkpoint directory (`torch.hub.get_dir()/checkpoints`, where the LPIPS backbones are).
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    cache = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return [cache / "lsdm", Path(torch.hub.get_dir()) / "checkpoints"]


class InceptionFeatures:
    """clean-fid's "clean" Inception features for in-memory images.

    Mirrors `cleanfid.fid.get_model_features` (clean-fid's path for images produced by a model):
    images scaled to [0, 255] floats, grayscale replicated to RGB (clean-fid reads every image
    with PIL `.convert("RGB")`), resized with clean-fid's own resizer (`build_resizer("clean")`:
    PIL bicubic to 299 x 299, no quantisation), then the TorchScript `InceptionV3W` run through
    `cleanfid.fid.get_batch_features` on the given device. The network is clean-fid's class built
    with `download=False`, so a missing file is an error here, never a download.
    """

    def __init__(self, weights: Path, device: torch.device, batch_size: int = 64, mode: str = "clean"):
        from cleanfid.inception_torchscript import InceptionV3W
        from cleanfid.resize import build_resizer

        weights = Path(weights)
        if not os.path.exists(weights):
            raise FileNotFoundError(f"{weights}: Inception weights not found")
        folder = weights.parent
        if weights.name != INCEPTION_FILE:  # InceptionV3W loads <folder>/inception-2015-12-05.pt by name
            self._tmp = tempfile.TemporaryDirectory(prefix="lsdm-inception-")
            folder = Path(self._tmp.name)
            os.symlink(weights.resolve(), folder / INCEPTION_FILE)
        with warnings.catch_warnings():
            # clean-fid's network is a TorchScript file that InceptionV3W opens with `torch.jit.load`,
            # which torch 2.x flags as deprecated on every call; there is no other loader for that
            # file, so the notice says nothing the user can act on (the rest still warns)
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is", category=FutureWarning)
            self.model = InceptionV3W(str(folder), download=False, resize_inside=False).to(device).eval()
        self.resize, self.device, self.batch_size = build_resizer(mode), device, batch_size

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        x = images.detach().float().cpu().clamp(0, 1) * 255.0  # clean-fid's models emit [0, 255]
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        arrays = x.permute(0, 2, 3, 1).numpy()  # HWC, as clean-fid's resizer expects
        return torch.stack([torch.from_numpy(self.resize(a).transpose(2, 0, 1).copy()) for a in arrays])

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        from cleanfid.fid import get_batch_features

        out = [
            get_batch_features(self._prepare(images[i : i + self.batch_size]), self.model, self.device)
            for i in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(out).astype(np.float64)


def load_inception(path: str | None, device: torch.device) -> tuple[InceptionFeatures | None, Path | None, str | None]:
    """(extractor, weights file, None) when the weights are on disk, else (None, None, reason)."""
    weights, reason = find_inception(path)
    if weights is None:
        return None, None, reason
    try:
        return InceptionFeatures(weights, device), weights, None
    except Exception as e:  # a corrupt or foreign file: say so rather than crash the stage
        return None, weights, f"Inception weights at {weights} could not be loaded: {type(e).__name__}: {e}"


# ---------------------------------------------------------------- LPIPS


def _torchvision_weights(net: str):
    from torchvision.models import AlexNet_Weights, SqueezeNet1_1_Weights, VGG16_Weights

    # what `lpips.pretrained_networks` asks torchvision for (`pretrained=True` = IMAGENET1K_V1)
    return {"alex": AlexNet_Weights, "vgg": VGG16_Weights, "squeeze": SqueezeNet1_1_Weights}[net].IMAGENET1K_V1


def lpips_backbone_file(net: str) -> Path:
    """Where torchvision looks for the LPIPS backbone: $TORCH_HOME/hub/checkpoints/<url's file name>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(_torchvision_weights(net).url)


def lpips_linear_file(net: str, version: str = "0.1") -> Path:
    """The LPIPS linear-layer weights shipped inside the `lpips` package."""
    import lpips

    return Path(lpips.__file__).parent / "weights" / f"v{version}" / f"{net}.pth"


@dataclass
class LPIPSDistance:
    """LPIPS between image pairs; images in [0, 1], grayscale replicated to RGB, upsampled
    (bilinear) to `size` when smaller, since AlexNet's strides need at least ~40 pixels."""

    model: nn.Module
    device: torch.device
    size: int = 64
    batch_size: int = 64

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().to(self.device)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        if min(x.shape[-2:]) < self.size:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x * 2 - 1  # lpips expects [-1, 1]

    @torch.no_grad()
    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = [
            self.model(self._prep(a[i : i + self.batch_size]), self._prep(b[i : i + self.batch_size])).flatten().cpu()
            for i in range(0, len(a), self.batch_size)
        ]
        return torch.cat(out)


def load_lpips(net: str, device: torch.device, size: int = 64) -> tuple[LPIPSDistance | None, str | None]:
    """(LPIPS, None) when both weight files are on disk, else (None, reason). Never downloads."""
    backbone, linear = lpips_backbone_file(net), lpips_linear_file(net)
    if not os.path.exists(backbone):
        return None, (
            f"LPIPS ({net}) backbone weights not found at {backbone} (torchvision's checkpoint directory, "
            f"$TORCH_HOME/hub/checkpoints); lsdm never downloads weights"
        )
    if not os.path.exists(linear):
        return None, f"LPIPS ({net}) linear-layer weights missing from the lpips package ({linear})"
    import lpips

    saved = torch.hub.download_url_to_file
    torch.hub.download_url_to_file = _no_download  # belt and braces: the file exists, so this is never hit
    try:
        with warnings.catch_warnings():  # torchvision's `pretrained=` deprecation, from inside lpips
            warnings.simplefilter("ignore")
            model = lpips.LPIPS(net=net, version="0.1", verbose=False).to(device).eval()
    except Exception as e:
        return None, f"LPIPS ({net}) weights at {backbone} could not be loaded: {type(e).__name__}: {e}"
    finally:
        torch.hub.download_url_to_file = saved
    return LPIPSDistance(model, device, size), None


def pairwise_same_condition(
    distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    pairs_per_class: int,
    seed: int,
) -> tuple[float, dict[str, float]]:
    """Mean distance over random pairs (i != j) of images sharing a condition, per class and
    averaged over classes: the diversity of one condition's samples (0 = mode collapse)."""
    gen = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    per_class = {}
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < 2:
            continue
        i = torch.randint(0, len(idx), (pairs_per_class,), generator=gen)
        j = (i + torch.randint(1, len(idx), (pairs_per_class,), generator=gen)) % len(idx)  # j != i
        a, b = images[idx[i].to(images.device)], images[idx[j].to(images.device)]
        per_class[str(int(c))] = distance(a, b).mean().item()
    return (sum(per_class.values()) / len(per_class) if per_class else float("nan")), per_class
