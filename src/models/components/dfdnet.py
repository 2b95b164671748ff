"""DFDNet (Li et al., "Blind Face Restoration via Deep Multi-scale Component Dictionaries", ECCV 2020).

The restoration network `DFDNet` of the paper's Sec. 3.2 (Fig. 3), as the official code builds it
(csxmli2016/DFDNet models/networks.py `UNetDictFace`; BasicSR's re-implementation basicsr/archs/dfdnet_arch.py
`DFDNet`, whose module names we use, so its `DFDNet_official-*.pth` maps key for key; weights/dfdnet.py maps
the official names):
- a frozen VGG-19 encoder giving relu2_2, relu3_4, relu4_4 and conv5_4 (the official slices [0:8], [8:17],
  [17:26], [26:35] with torchvision's in-place ReLUs; conv5_4 is pre-activation). The paper calls it VGGFace;
  the code loads ImageNet VGG-19 weights (weights/vgg19.pth, torchvision layout), and so do we, through the
  resolver (`vgg19-dcbb9e9d.pth`). Its input normalisation `rgb_mean`/`rgb_std` is kept here (the official
  `VggExtract.RGB_mean/RGB_std` are saved parameters);
- at each of the four scales, one dictionary feature transfer (DFT) block per part (`dft`): the part's
  features, CAdaIN-renormalised atoms, the best atom by correlation, its confidence-weighted blend and the
  paste back;
- `MSDilationBlock` on conv5_4, four `SFTUpBlock`s whose SFT scale/shift come from the dictionary-updated
  features of the same scale, and `upsample4` to RGB (tanh). Spectral norm is `torch.nn.utils.spectral_norm`'s
  (`SNConv2d`: keys `weight_orig`, `weight_u`, `weight_v`), where the official code puts it.

Input contract: (B, 3, H, W) in [-1, 1], H and W multiples of 32 (the VGG's four poolings and the decoder's
four doublings), with `boxes` (B, 4, 4): (x1, y1, x2, y2) pixel boxes of left eye, right eye, nose, mouth
(`dfdnet_parts`); each batch element has its own boxes and picks its own atoms (the official code handles
batch element 0 only). The dictionary atoms keep the size they were built at (`dfdnet_parts.atom_size` for
that face size); parts are resized to them, so any face size works, best at the size the dictionary was
built for.

`width` (ours, for tiny test configs) scales every channel count: the VGG-19's (a random one: the VGG-19
file is width 1), the dictionaries' and confidence blocks' (`dfdnet_parts.channels`) and the decoder's.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facezoo.losses.frozen import Frozen
from facezoo.losses.perceptual import VGG19Features, scaled_width
from facezoo.models.components.dfdnet_parts import PARTS, SCALES, channels, stride
from facezoo.utils.errors import ConfigError

VGG_LAYERS = ("relu2_2", "relu3_4", "relu4_4", "conv5_4")  # SCALES order
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
NUM_FEAT = 64  # the official ngf; the decoder's widths must equal the VGG's (64·8 = 512 … 64·2 = 128)
EPS = 1e-5  # calc_mean_std_4D: var + 1e-5
SN_EPS = 1e-12  # torch.nn.utils.spectral_norm's default


SETTLE_STEPS = 15


class SNConv2d(nn.Module):
    """A 3×3 conv under spectral normalisation, as `torch.nn.utils.spectral_norm(nn.Conv2d(...))` computes
    it (one power iteration per training forward, eps 1e-12, the weight divided by u·W·v) and with its state
    (`weight_orig`, `weight_u`, `weight_v`, `bias`), so the official files load as they are. Unlike that
    hook, the normalised weight is a temporary of each call, not kept on the module (a second copy of every
    weight: 370 MB in DFDNet), and is made in the input's memory format (channels-last convs)."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1) -> None:
        super().__init__()
        conv = nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation)  # PyTorch's default init
        self.weight_orig, self.bias = conv.weight, conv.bias
        self.dilation = dilation
        self.register_buffer("weight_u", F.normalize(torch.randn(out_ch), dim=0, eps=SN_EPS))
        self.register_buffer("weight_v", F.normalize(torch.randn(in_ch * 9), dim=0, eps=SN_EPS))
        # random u, v make u·W·v anything down to ~0 (an eval-mode output of inf): settle them first, as
        # torch.nn.utils.parametrizations.spectral_norm does (15 power iterations when it is registered)
        for _ in range(0 if self.weight_orig.is_meta else SETTLE_STEPS):  # (meta: weights loaded later)
            self.power_iteration()

    @torch.no_grad()
    def power_iteration(self) -> None:
        matrix = self.weight_orig.flatten(1)
        F.normalize(torch.mv(matrix.t(), self.weight_u), dim=0, eps=SN_EPS, out=self.weight_v)
        F.normalize(torch.mv(matrix, self.weight_v), dim=0, eps=SN_EPS, out=self.weight_u)

    def forward(self, x: Tensor) -> Tensor:
        matrix = self.weight_orig.flatten(1)
        u, v = self.weight_u, self.weight_v
        if self.training:
            self.power_iteration()
            u, v = u.clone(), v.clone()
        weight = self.weight_orig / torch.dot(u, torch.mv(matrix, v))
        if x.is_contiguous(memory_format=torch.channels_last):
            weight = weight.contiguous(memory_format=torch.channels_last)
        return F.conv2d(x, weight, self.bias, padding=self.dilation, dilation=self.dilation)


class Blur(nn.Module):
    """Depthwise 3×3 blur [1, 2, 1] ⊗ [1, 2, 1] / 16 (official `Blur`; a constant, not in the state_dict)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        kernel = (k[:, None] * k[None, :] / 16).expand(channels, 1, 3, 3).contiguous()
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.kernel, padding=1, groups=x.shape[1])


def confidence_block(channels: int) -> nn.Sequential:
    """The paper's F_Conf (official `AttentionBlock`): SN conv3×3 → LReLU 0.2 → SN conv3×3, C → C."""
    return nn.Sequential(
        SNConv2d(channels, channels), nn.LeakyReLU(0.2, inplace=True), SNConv2d(channels, channels)
    )


class MSDilationBlock(nn.Module):
    """Multi-scale dilation block on conv5_4: four (SN conv → LReLU 0.2 → SN conv) branches with dilations
    4, 3, 2, 1, concatenated, fused by an SN conv 4C → C, plus the input (official `MSDilateBlock`)."""

    def __init__(self, channels: int, dilation: tuple[int, ...] = (4, 3, 2, 1)) -> None:
        super().__init__()
        self.conv_blocks = nn.ModuleList(
            nn.Sequential(
                SNConv2d(channels, channels, d),
                nn.LeakyReLU(0.2, inplace=True),
                SNConv2d(channels, channels, d),
            )
            for d in dilation
        )
        self.conv_fusion = SNConv2d(channels * len(dilation), channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_fusion(torch.cat([block(x) for block in self.conv_blocks], 1)) + x


class SFTUpBlock(nn.Module):
    """Official `StyledUpBlock`: blur → SN conv → LReLU, spatially modulated `out·scale + shift` by the
    (dictionary-updated) VGG feature of the same scale, then bilinear ×2 → SN conv → LReLU.

    The official conv1 ends in two LReLU(0.2) in a row, one LReLU(0.04) here (as BasicSR); its shift branch
    ends in a sigmoid (so in the official code)."""

    def __init__(self, in_channel: int, out_channel: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            Blur(in_channel), SNConv2d(in_channel, out_channel), nn.LeakyReLU(0.04, inplace=True)
        )
        self.convup = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            SNConv2d(out_channel, out_channel),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.scale_block = nn.Sequential(
            SNConv2d(in_channel, out_channel),
            nn.LeakyReLU(0.2, inplace=True),
            SNConv2d(out_channel, out_channel),
        )
        self.shift_block = nn.Sequential(
            SNConv2d(in_channel, out_channel),
            nn.LeakyReLU(0.2, inplace=True),
            SNConv2d(out_channel, out_channel),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        out = self.conv1(x) * self.scale_block(condition) + self.shift_block(condition)
        return self.convup(out)


class UpResBlock(nn.Module):
    """x + conv3×3(LReLU 0.2(conv3×3(x))), plain convs (official `UpResBlock`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).add_(x)  # in place: one 512² activation less at the peak


class ComponentDictionary(nn.Module):
    """The multi-scale component dictionaries (paper Sec. 3.1): buffers `{part}_{scale}` of shape
    (K, C, h, w), `scale` in `SCALES` (feature size at 512), C = `channels(scale, width)`. K and the atom size
    come from the data (the official files, the BasicSR file or facezoo-dfdnet-dictionary), so loading a
    state_dict adopts the stored shapes; only C is checked. Empty (K = 0) until atoms are given."""

    def __init__(self, atoms=None, width: float = 1.0) -> None:
        super().__init__()
        self.width = width
        for part in PARTS:
            for scale in SCALES:
                self.register_buffer(f"{part}_{scale}", torch.zeros(0, channels(scale, width), 1, 1))
        self.statistics: dict[str, tuple[Tensor, Tensor]] = {}
        if atoms is not None:
            self.set_atoms(atoms)

    def set_atoms(self, atoms) -> None:
        """`atoms[part][scale]` (scale an int of `SCALES` or its string) → (K, C, h, w) tensors, every part
        and scale present; replaces the buffers."""
        for part in PARTS:
            for scale in SCALES:
                try:
                    found = atoms[part][scale] if scale in atoms[part] else atoms[part][str(scale)]
                except (KeyError, TypeError):
                    raise ConfigError(f"DFDNet dictionary: no atoms for {part} at scale {scale}") from None
                found = torch.as_tensor(found)
                setattr(self, f"{part}_{scale}", self.checked(f"{part}_{scale}", found, self.width))
        self.statistics.clear()

    @staticmethod
    def checked(name: str, atoms: Tensor, width: float = 1.0) -> Tensor:
        """`atoms` for buffer `name` as float32, or a ConfigError naming it when not (K, C, h, w)."""
        expected = channels(int(name.rsplit("_", 1)[1]), width)
        if atoms.ndim != 4 or atoms.shape[1] != expected:
            raise ConfigError(
                f"DFDNet dictionary {name}: expected (K, {expected}, h, w) atoms, got {tuple(atoms.shape)}"
            )
        return atoms.float()

    def atoms(self, part: str, scale: int) -> Tensor:
        return getattr(self, f"{part}_{scale}")

    def atom_statistics(self, part: str, scale: int) -> tuple[Tensor, Tensor]:
        """CAdaIN's per-channel (mean, std) of each atom, (K, C) each: the atoms are fixed, so they are
        computed once (per device and dtype) instead of at every forward (2.5 s of a 512 px forward at
        K = 512). `set_atoms` and loading a state_dict drop them."""
        atoms = self.atoms(part, scale)
        key = f"{part}_{scale}"
        cached = self.statistics.get(key)
        if cached is None or cached[0].device != atoms.device or cached[0].shape[0] != atoms.shape[0]:
            with torch.inference_mode(False), torch.no_grad():  # (made in a validation: usable in training)
                cached = self.statistics[key] = _mean_std(atoms.flatten(2).float())
        return cached

    @property
    def size(self) -> int:
        """The smallest K over parts and scales (0: no atoms yet)."""
        return min(self.atoms(p, s).shape[0] for p in PARTS for s in SCALES)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        for name, buffer in self._buffers.items():
            stored = state_dict.get(prefix + name)
            if torch.is_tensor(stored) and stored.shape != buffer.shape:  # the stored K and atom size
                shape = self.checked(name, stored, self.width).shape
                self._buffers[name] = torch.empty(shape, device=buffer.device, dtype=buffer.dtype)
        self.statistics.clear()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _mean_std(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std over the last dim of (..., C, N), as calc_mean_std_4D: sqrt(unbiased
    var + 1e-5) (the biased variance for a single element, where the unbiased one is undefined)."""
    var = x.var(dim=-1, correction=1 if x.shape[-1] > 1 else 0)
    return x.mean(dim=-1), (var + EPS).sqrt()


def match_atoms(
    parts: Tensor, atoms: Tensor, cadain: bool = True, atom_statistics: tuple[Tensor, Tensor] | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Feature match (paper Eq. 2–3): (B, C, h, w) parts and (K, C, h, w) atoms → (scores (B, K), index of the
    best atom (B,), that atom (B, C, h, w)).

    With `cadain` each atom is first renormalised to the part's per-channel statistics (CAdaIN, Eq. 2):
    RDic_k = σ(F)·(Dic_k − μ(Dic_k))/σ(Dic_k) + μ(F), and the score is ⟨F, RDic_k⟩, the official
    `conv2d(part, atoms)`. The B·K renormalised atoms are never made: per channel c,
    ⟨F_c, RDic_k,c⟩ = σ(F_c)/σ(Dic_k,c)·(⟨F_c, Dic_k,c⟩ − μ(Dic_k,c)·ΣF_c) + μ(F_c)·ΣF_c, so one batched
    product (B, K, C) of the parts with the raw atoms gives every score, and only the chosen atom is
    renormalised. `atom_statistics`: the atoms' (μ, σ), (K, C) each, when known (`ComponentDictionary`
    keeps them). The official softmax before its argmax changes nothing and is left out; ties go to the
    lowest index. The match runs in float32 whatever the autocast dtype: a half-precision score would turn
    near ties into different atoms."""
    with torch.autocast(parts.device.type, enabled=False):
        dtype = torch.promote_types(parts.dtype, torch.float32)
        p, d = parts.to(dtype).flatten(2), atoms.to(dtype).flatten(2)  # (B, C, n), (K, C, n)
        if not cadain:
            scores = p.flatten(1) @ d.flatten(1).t()
            index = scores.argmax(dim=1)
            return scores, index, atoms[index].to(parts.dtype)
        mu_p, sd_p = _mean_std(p)  # (B, C)
        mu_d, sd_d = _mean_std(d) if atom_statistics is None else atom_statistics  # (K, C)
        sum_p = p.sum(dim=2)
        per_channel = torch.einsum("bcn,kcn->bkc", p, d) - mu_d * sum_p[:, None]  # (B, K, C)
        scores = (per_channel * (sd_p[:, None] / sd_d)).sum(2) + (mu_p * sum_p).sum(1, keepdim=True)
        index = scores.argmax(dim=1)
        chosen = (d[index] - mu_d[index, :, None]) / sd_d[index, :, None] * sd_p[..., None] + mu_p[..., None]
        return scores, index, chosen.view(parts.shape).to(parts.dtype)


def part_cells(boxes: Tensor, step: int, height: int, width: int) -> Tensor:
    """(B, 4) pixel boxes → (B, 4) feature cells (x1, y1, x2, y2), x2/y2 exclusive, at a feature of `step`
    pixels per cell: the official `(box // step)` slice `[y1:y2, x1:x2]`, kept inside the feature and at
    least one cell wide (the official code would index outside or take an empty slice there)."""
    cells = torch.div(boxes, step, rounding_mode="floor").long()
    x1, y1 = cells[:, 0].clamp(0, width - 1), cells[:, 1].clamp(0, height - 1)
    x2 = torch.maximum(cells[:, 2].clamp(max=width), x1 + 1)
    y2 = torch.maximum(cells[:, 3].clamp(max=height), y1 + 1)
    return torch.stack((x1, y1, x2, y2), dim=1)


def _linear_indices(n: Tensor, out: int) -> tuple[Tensor, Tensor, Tensor]:
    """F.interpolate(mode='bilinear', align_corners=False) from `n` (B,) to `out` samples along one axis:
    (lower index, upper index, weight of the upper), each (B, out), computed as PyTorch does in float32."""
    scale = n.float() / torch.tensor(float(out), device=n.device)  # an IEEE division, as PyTorch's
    src = ((torch.arange(out, device=n.device) + 0.5) * scale[:, None] - 0.5).clamp(min=0)
    low = torch.minimum(src.floor().long(), n[:, None] - 1)
    high = torch.minimum(low + 1, n[:, None] - 1)
    return low, high, (src - low).clamp(0, 1)


def _nearest_indices(size: int, n: Tensor, length: int) -> Tensor:
    """F.interpolate(mode='nearest') from `size` to `n` (B,) samples: source index of each of `length`
    outputs, (B, length) (floor(j·size/n) in float32, clamped)."""
    scale = torch.tensor(float(size), device=n.device) / n.float()  # not size·(1/n), which is inexact
    j = torch.arange(length, device=n.device)
    return (j * scale[:, None]).floor().long().clamp(max=size - 1)


def _resize_regions(regions: Tensor, ny: Tensor, nx: Tensor, h: int, w: int) -> Tensor:
    """Bilinear resize of each batch element's top-left (ny[b], nx[b]) cells of (B, C, Hm, Wm) to (h, w):
    F.interpolate of the region alone (so its edges clamp inside the region), columns first as PyTorch."""
    b, c, hm, _ = regions.shape
    x0, x1, lx = _linear_indices(nx, w)
    lx = lx[:, None, None].to(regions.dtype)
    cols = lambda idx: regions.gather(3, idx[:, None, None].expand(b, c, hm, w))  # noqa: E731
    out = cols(x0) * (1 - lx) + cols(x1) * lx
    y0, y1, ly = _linear_indices(ny, h)
    ly = ly[:, None, :, None].to(regions.dtype)
    rows = lambda idx: out.gather(2, idx[:, None, :, None].expand(b, c, h, w))  # noqa: E731
    return rows(y0) * (1 - ly) + rows(y1) * ly


def dft(
    feature: Tensor,
    boxes: Tensor,
    step: int,
    dictionary: dict[str, Tensor],
    confidence: dict[str, nn.Sequential] | None,
    cadain: bool = True,
    statistics: dict[str, tuple[Tensor, Tensor]] | None = None,
) -> tuple[Tensor, Tensor]:
    """The dictionary feature transfer block of one scale (paper Sec. 3.2, Fig. 3(b)), batched over B.

    For each part, in `PARTS` order: the part's feature cells (`part_cells`), bilinearly resized to the atom
    size (official: slice + F.interpolate; not RoIAlign), `match_atoms`, the chosen atom nearest-resized back
    to the part's cells, then F̂ = F + Conf(RDic* − F)·RDic* (the official code: `attn·swap + part`; the
    paper's Eq. 4 writes the same product) written over a copy of the feature, later parts over earlier ones
    where boxes overlap. Parts of different sizes are batched in a zero canvas of the largest size,
    top-left aligned and masked between the two confidence convs, which is exactly the official zero-padded
    conv of each part alone. `confidence[part]`: its `confidence_block`; None: Conf ≡ 1 (the ablation
    without the confidence block). `statistics[part]`: the atoms' CAdaIN (μ, σ) if known.

    (B, C, H, W) feature, (B, 4, 4) boxes in pixels, `step` pixels per cell, `dictionary[part]` (K, C, h, w)
    → (updated feature, chosen atom indices (B, 4))."""
    b, _, height, width = feature.shape
    batch = torch.arange(b, device=feature.device)[:, None, None]
    updated, chosen_index = feature.clone(), []
    for i, part in enumerate(PARTS):
        x1, y1, x2, y2 = part_cells(boxes[:, i], step, height, width).unbind(1)
        ny, nx = y2 - y1, x2 - x1
        hm, wm = int(ny.max()), int(nx.max())
        rows = y1[:, None] + torch.arange(hm, device=feature.device)  # (B, hm) feature rows of the canvas
        cols = x1[:, None] + torch.arange(wm, device=feature.device)
        inside = (rows < y2[:, None])[:, :, None] & (cols < x2[:, None])[:, None, :]  # (B, hm, wm)
        rows, cols = rows.clamp(max=height - 1)[:, :, None], cols.clamp(max=width - 1)[:, None, :]
        mask = inside[:, None].to(feature.dtype)
        region = feature[batch, :, rows, cols].permute(0, 3, 1, 2) * mask  # (B, C, hm, wm), zero outside
        atoms = dictionary[part]
        parts = _resize_regions(region, ny, nx, *atoms.shape[2:])
        _, index, atom = match_atoms(parts, atoms, cadain, statistics and statistics[part])
        swap = atom[batch, :, _nearest_indices(atom.shape[2], ny, hm)[:, :, None],
                    _nearest_indices(atom.shape[3], nx, wm)[:, None, :]].permute(0, 3, 1, 2)
        if confidence is None:
            blended = region + swap
        else:
            block = confidence[part]
            conf = block[2](block[1](block[0]((swap - region) * mask)) * mask)
            blended = region + conf * swap
        rows, cols = rows.expand_as(inside), cols.expand_as(inside)
        updated[batch.expand_as(inside)[inside], :, rows[inside], cols[inside]] = (
            blended.permute(0, 2, 3, 1)[inside]
        )
        chosen_index.append(index)
    return updated, torch.stack(chosen_index, dim=1)


class DFDNet(nn.Module):
    """DFDNet's generator: `forward(lq, boxes) → restored` (B, 3, H, W) in [-1, 1] (module docstring).

    Args:
        dictionary: `atoms[part][scale]` → (K, C, h, w) (see `ComponentDictionary`), or None to load them
            later (`dictionary.set_atoms`, or a state_dict holding `dictionary.*`).
        vgg: a ready VGG-19 feature extractor (`VGG19Features` of `VGG_LAYERS`, raw input); None builds one
            from the resolver's `vgg19-dcbb9e9d.pth` (`vgg_weights`: explicit path; `allow_random_vgg`:
            a loud warning and a fixed-seed random VGG instead of an error when the file is missing).
        use_dictionary: False is the paper's ablation without dictionaries: a plain U-Net whose SFT
            conditions are the VGG features themselves (no DFT blocks, no confidence blocks).
        use_cadain: False matches and transfers the raw atoms (ablation without CAdaIN).
        use_confidence: False blends with Conf ≡ 1, F̂ = F + RDic* (ablation without the confidence block).
        scales: the scale indices (0 = 256 … 3 = 32 at 512) that get DFT blocks; e.g. (0,) for one scale.
        width: every channel count × `width` (the module docstring); a given `vgg` must be that wide.
    """

    def __init__(
        self,
        dictionary=None,
        vgg: nn.Module | None = None,
        vgg_weights: str | None = None,
        allow_random_vgg: bool = False,
        use_dictionary: bool = True,
        use_cadain: bool = True,
        use_confidence: bool = True,
        scales: tuple[int, ...] | list[int] = (0, 1, 2, 3),
        width: float = 1.0,
    ) -> None:
        super().__init__()
        if not width > 0:
            raise ConfigError(f"DFDNet width must be positive, got {width}")
        self.width = width
        self.scales = tuple(sorted({int(s) for s in scales})) if use_dictionary else ()
        if use_dictionary and (not self.scales or not set(self.scales) <= set(range(len(SCALES)))):
            raise ConfigError(f"DFDNet scales must be a non-empty subset of 0..3, got {list(scales)}")
        self.use_dictionary, self.use_cadain, self.use_confidence = use_dictionary, use_cadain, use_confidence
        if vgg is None:
            vgg = VGG19Features(
                list(VGG_LAYERS), vgg_weights, allow_random_vgg, input_norm="none", width=width
            )
        self.vgg = Frozen(vgg.to(memory_format=torch.channels_last))  # channels-last convs: faster on CPU
        self.register_buffer("rgb_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("rgb_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        if use_dictionary:
            self.dictionary = ComponentDictionary(dictionary, width)
            if use_confidence:
                self.attn_blocks = nn.ModuleDict(
                    {
                        f"{part}_{SCALES[i]}": confidence_block(channels(SCALES[i], width))
                        for i in self.scales
                        for part in PARTS
                    }
                )
        f1, f2, f4, f8 = (scaled_width(NUM_FEAT * m, width) for m in (1, 2, 4, 8))  # = the VGG's widths
        self.multi_scale_dilation = MSDilationBlock(f8)
        self.upsample0 = SFTUpBlock(f8, f8)
        self.upsample1 = SFTUpBlock(f8, f4)
        self.upsample2 = SFTUpBlock(f4, f2)
        self.upsample3 = SFTUpBlock(f2, f1)
        self.upsample4 = nn.Sequential(
            SNConv2d(f1, f1),
            nn.LeakyReLU(0.2, inplace=True),
            UpResBlock(f1),
            UpResBlock(f1),
            nn.Conv2d(f1, 3, 3, 1, 1),
            nn.Tanh(),
        )

    def check_input(self, lq: Tensor, boxes: Tensor | None) -> None:
        if lq.ndim != 4 or lq.shape[1] != 3 or lq.shape[2] % 32 or lq.shape[3] % 32 or min(lq.shape[2:]) < 32:
            raise ConfigError(
                f"DFDNet: expected (B, 3, H, W) faces with H and W multiples of 32, got {tuple(lq.shape)}"
            )
        if not self.use_dictionary:
            return
        if boxes is None or tuple(boxes.shape) != (lq.shape[0], len(PARTS), 4):
            found = None if boxes is None else tuple(boxes.shape)
            raise ConfigError(
                f"DFDNet: expected ({lq.shape[0]}, 4, 4) part boxes ({', '.join(PARTS)}) with the faces, "
                f"got {found}"
            )
        if self.dictionary.size == 0:
            raise ConfigError(
                "DFDNet: the component dictionaries are empty; build them with facezoo-dfdnet-dictionary or "
                "import the official ones"
            )

    def features(self, lq: Tensor) -> list[Tensor]:
        """The VGG-19 features at the four scales, finest first."""
        x = ((lq + 1) / 2 - self.rgb_mean) / self.rgb_std
        feats = self.vgg(x.contiguous(memory_format=torch.channels_last))
        return [feats[name] for name in VGG_LAYERS]

    def transfer(self, features: list[Tensor], boxes: Tensor) -> tuple[list[Tensor], dict[int, Tensor]]:
        """The DFT blocks: the features with the chosen atoms blended in at `scales`, and the chosen atom
        indices (B, 4) per scale index."""
        updated, chosen = list(features), {}
        for i in self.scales:
            atoms = {part: self.dictionary.atoms(part, SCALES[i]) for part in PARTS}
            statistics = {part: self.dictionary.atom_statistics(part, SCALES[i]) for part in PARTS}
            confidence = None
            if self.use_confidence:
                confidence = {part: self.attn_blocks[f"{part}_{SCALES[i]}"] for part in PARTS}
            updated[i], chosen[i] = dft(
                features[i], boxes, stride(i), atoms, confidence, self.use_cadain, statistics
            )
        return updated, chosen

    def forward(self, lq: Tensor, boxes: Tensor | None = None) -> Tensor:
        self.check_input(lq, boxes)
        features = self.features(lq)
        out = self.multi_scale_dilation(features[3])
        if self.use_dictionary:
            features = self.transfer(features, boxes.to(lq.dtype))[0]  # (the originals are let go)
        for block in (self.upsample0, self.upsample1, self.upsample2, self.upsample3):
            out = block(out, features.pop())  # SFT conditions from the deepest up; each let go once used
        return self.upsample4(out)
