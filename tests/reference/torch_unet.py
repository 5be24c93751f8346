"""PyTorch mirror of unet::UNet (include/unet/nn/unet.h) and of the losses of loss.h.

Used by tests/reference/check_against_torch.py (numerical cross-check of forward, loss,
gradients, one Adam step and batch-norm running statistics) and by bench/torch_unet_bench.py
(the PyTorch baseline of the benchmark). Run with /usr/bin/python3 (Debian python3-torch 1.13).

Architecture (C_l = base_filters * 2^l, l = 0..depth):
  enc{l}   conv1 3x3(x3) -> norm1 + ReLU -> conv2 -> norm2 + ReLU; levels l < depth are then
           max-pooled (2); the block output (after dropout, where there is dropout) is the skip.
  dropout  if rate > 0: after the blocks enc{depth-1} and enc{depth}.
  up{l}    transposed: ConvTranspose k2 s2 C_{l+1} -> C_l; nearest / linear: x2 interpolation
           (align_corners=False), keeps C_{l+1} channels.
  dec{l}   block on cat([up{l} output, skip l]) -> C_l.
  out      1x1 conv C_0 -> out_channels, sigmoid.
Parameter names equal the ParamStore view names of the C++ model, so
model.load_state_dict(...) takes our tensors name by name (batch norm's num_batches_tracked has
no C++ counterpart; load with strict=False or use load_unet_state()).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

NORMS = ("none", "batch", "group")
UPSAMPLINGS = ("transposed", "nearest", "linear")
LOSSES = ("dice", "log_dice", "bce", "dice_bce")
DICE_SMOOTH = 1.0
NORM_EPS = 1e-5
BN_MOMENTUM = 0.1


def _conv(dims):
    return nn.Conv2d if dims == 2 else nn.Conv3d


def _norm(kind, dims, channels, norm_groups):
    if kind == "batch":
        cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
        return cls(channels, eps=NORM_EPS, momentum=BN_MOMENTUM)
    if kind == "group":
        return nn.GroupNorm(math.gcd(norm_groups, channels), channels, eps=NORM_EPS)
    return None


class Block(nn.Module):
    """conv1 -> norm1 + ReLU -> conv2 -> norm2 + ReLU (ReLU only with norm 'none')."""

    def __init__(self, dims, in_channels, out_channels, norm, norm_groups):
        super().__init__()
        conv = _conv(dims)
        self.conv1 = conv(in_channels, out_channels, 3, padding=1)
        n1 = _norm(norm, dims, out_channels, norm_groups)
        if n1 is not None:
            self.norm1 = n1
        self.conv2 = conv(out_channels, out_channels, 3, padding=1)
        n2 = _norm(norm, dims, out_channels, norm_groups)
        if n2 is not None:
            self.norm2 = n2

    taps = None  # list: when set, forward() appends ("relu", pre-activation) for tie analysis

    def forward(self, x):
        x = self.conv1(x)
        if hasattr(self, "norm1"):
            x = self.norm1(x)
        if self.taps is not None:
            self.taps.append(("relu", x.detach()))
        x = F.relu(x)
        x = self.conv2(x)
        if hasattr(self, "norm2"):
            x = self.norm2(x)
        if self.taps is not None:
            self.taps.append(("relu", x.detach()))
        return F.relu(x)


class TorchUNet(nn.Module):
    def __init__(self, dims=2, in_channels=4, out_channels=1, base_filters=32, depth=4,
                 upsampling="transposed", norm="none", norm_groups=8, dropout=0.0):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError("dims must be 2 or 3")
        if upsampling not in UPSAMPLINGS:
            raise ValueError("upsampling must be one of %s" % (UPSAMPLINGS,))
        if norm not in NORMS:
            raise ValueError("norm must be one of %s" % (NORMS,))
        self.dims, self.depth, self.upsampling, self.dropout_rate = dims, depth, upsampling, dropout
        filters = [base_filters << l for l in range(depth + 1)]
        self.filters = filters
        for l in range(depth + 1):
            cin = in_channels if l == 0 else filters[l - 1]
            setattr(self, "enc%d" % l, Block(dims, cin, filters[l], norm, norm_groups))
        tconv = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        for l in range(depth - 1, -1, -1):
            if upsampling == "transposed":
                setattr(self, "up%d" % l, tconv(filters[l + 1], filters[l], 2, stride=2))
                up_c = filters[l]
            else:
                up_c = filters[l + 1]
            setattr(self, "dec%d" % l, Block(dims, up_c + filters[l], filters[l], norm, norm_groups))
        self.out = _conv(dims)(filters[0], out_channels, 1)
        self.drop = nn.Dropout(dropout) if dropout > 0 else None
        self.taps = None

    def enable_taps(self):
        """Records every ReLU pre-activation and max-pool input of the following forward passes
        in self.taps (a list of (kind, tensor)), for near-tie analysis."""
        self.taps = []
        for m in self.modules():
            if isinstance(m, Block):
                m.taps = self.taps

    def _up(self, l, x):
        if self.upsampling == "transposed":
            return getattr(self, "up%d" % l)(x)
        if self.upsampling == "nearest":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        mode = "bilinear" if self.dims == 2 else "trilinear"
        return F.interpolate(x, scale_factor=2, mode=mode, align_corners=False)

    def forward(self, x):
        pool = F.max_pool2d if self.dims == 2 else F.max_pool3d
        skips = []
        for l in range(self.depth + 1):
            x = getattr(self, "enc%d" % l)(x)
            if self.drop is not None and l >= self.depth - 1:
                x = self.drop(x)
            if l < self.depth:
                skips.append(x)
                if self.taps is not None:
                    self.taps.append(("pool", x.detach()))
                x = pool(x, 2)
        for l in range(self.depth - 1, -1, -1):
            x = self._up(l, x)
            x = torch.cat([x, skips[l]], dim=1)
            x = getattr(self, "dec%d" % l)(x)
        return torch.sigmoid(self.out(x))


def build_model(cfg):
    """cfg: dict with dims, in_channels, out_channels, base_filters, depth, upsampling, norm,
    norm_groups, dropout (missing keys take the UNetConfig defaults)."""
    return TorchUNet(dims=int(cfg.get("dims", 2)), in_channels=int(cfg.get("in_channels", 4)),
                     out_channels=int(cfg.get("out_channels", 1)),
                     base_filters=int(cfg.get("base_filters", 32)), depth=int(cfg.get("depth", 4)),
                     upsampling=cfg.get("upsampling", "transposed"), norm=cfg.get("norm", "none"),
                     norm_groups=int(cfg.get("norm_groups", 8)),
                     dropout=float(cfg.get("dropout", 0.0)))


def load_unet_state(model, tensors):
    """Loads {name: tensor} (our ParamStore names: parameters and running stats) into model.
    Every parameter and running statistic of the model must be present; extra names raise."""
    result = model.load_state_dict(tensors, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise KeyError("state mismatch: missing %s, unexpected %s" % (missing, result.unexpected_keys))


# ---------------------------------------------------------------- losses (include/unet/nn/loss.h)

def channel_losses(kind, pred, truth):
    """Each output channel's batch loss (a tensor of C values) of sigmoid probabilities `pred`
    against binary `truth`, both N x C x [D x] H x W: channel c alone, Dice over all N samples
    of it (Intel's batch Dice), BCE as the mean over its N * voxels values."""
    if pred.shape != truth.shape or pred.dim() < 3:
        raise ValueError("pred %s and truth %s: expected equal N x C x spatial shapes"
                         % (tuple(pred.shape), tuple(truth.shape)))
    losses = []
    for c in range(pred.shape[1]):
        p = pred[:, c].reshape(-1)
        t = truth[:, c].reshape(-1)
        dice = (2.0 * (p * t).sum() + DICE_SMOOTH) / (p.sum() + t.sum() + DICE_SMOOTH)
        if kind == "dice":
            losses.append(1.0 - dice)
        elif kind == "log_dice":
            losses.append(-torch.log(dice))
        elif kind == "bce":
            losses.append(F.binary_cross_entropy(p, t))
        elif kind == "dice_bce":
            losses.append(1.0 - dice + F.binary_cross_entropy(p, t))
        else:
            raise ValueError("unknown loss %r" % kind)
    return torch.stack(losses)


def batch_loss(kind, pred, truth):
    """The batch loss: the mean over the output channels (one per tumour region with
    --labels regions) of each channel's own batch loss (channel_losses)."""
    return channel_losses(kind, pred, truth).mean()


# ------------------------------------------------------------ BraTS regions (label_regions.h)

# MSD Task01 labels: 0 background, 1 oedema, 2 non-enhancing tumour, 3 enhancing tumour.
REGION_LABELS = {"wt": (1, 2, 3), "tc": (2, 3), "et": (3,)}


def region_masks(labels, names):
    """labels: N x [D x] H x W label map; names: region names ("wt", "tc", "et") in channel
    order. Returns N x len(names) x [D x] H x W float masks, 1 where the label is in the region."""
    labels = torch.as_tensor(labels)
    chans = []
    for name in names:
        m = torch.zeros_like(labels, dtype=torch.float64)
        for v in REGION_LABELS[name.lower()]:
            m = torch.where(labels == v, torch.ones_like(m), m)
        chans.append(m)
    return torch.stack(chans, dim=1)


# ------------------------------------------------------ nominal FLOPs (UNet::train_flops_per_sample)

def train_flops_per_sample(cfg, spatial):
    """Nominal training FLOPs per sample: every convolution counts 2*OC*IC*k^d*output voxels
    forward (transposed: 2*IC*OC*2^d*input voxels), x3 for training (forward, backward-data,
    backward-weights) except the first convolution (x2, no backward-data)."""
    dims = int(cfg.get("dims", 2))
    depth = int(cfg.get("depth", 4))
    cin = int(cfg.get("in_channels", 4))
    cout = int(cfg.get("out_channels", 1))
    f = [int(cfg.get("base_filters", 32)) << l for l in range(depth + 1)]
    transposed = cfg.get("upsampling", "transposed") == "transposed"
    vox0 = 1
    for s in spatial:
        vox0 *= int(s)
    taps = 3 ** dims
    total = 0.0
    first = True

    def conv(ic, oc, k_taps, voxels):
        nonlocal total, first
        fwd = 2.0 * oc * ic * k_taps * voxels
        total += fwd * (2 if first else 3)
        first = False

    for l in range(depth + 1):
        vox = vox0 / (2 ** (dims * l))
        conv(cin if l == 0 else f[l - 1], f[l], taps, vox)
        conv(f[l], f[l], taps, vox)
    for l in range(depth - 1, -1, -1):
        vox = vox0 / (2 ** (dims * l))
        if transposed:
            conv(f[l + 1], f[l], 2 ** dims, vox0 / (2 ** (dims * (l + 1))))
            up_c = f[l]
        else:
            up_c = f[l + 1]
        conv(up_c + f[l], f[l], taps, vox)
        conv(f[l], f[l], taps, vox)
    conv(f[0], cout, 1, vox0)
    return total
