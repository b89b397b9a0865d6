#!/usr/bin/python3
"""Conformance of `convkit conv2d` / `convkit conv2d-backward` against PyTorch, through .npy files.

Draws seeded random convolutions over every option of issue 3, writes X, W, B and dL/dY with numpy
(float32, and some float64, Fortran-order, big-endian, float16 and int32 files, as numpy users save
them),
runs the convkit binary on them and compares what it writes with:

  * PyTorch, for every option PyTorch has: torch.nn.Conv2d in float64 (so its padding modes go
    through F.pad exactly as nn.Conv2d does) and torch.autograd for dL/dX, dL/dW, dL/dB;
  * the documented definition, for the options PyTorch lacks (issue 3): four-sided padding is
    F.pad(x, (left, right, top, bottom)) then a valid convolution; strided/dilated 'same' is
    TensorFlow's rule (Ho = ceil(H / sh), total = max((Ho - 1) sh + dh (kH - 1) + 1 - H, 0),
    top = total // 2); 'symmetric' and 'constant' are np.pad(mode='symmetric') and
    np.pad(constant_values=v) followed by a valid convolution. Their gradients come from autograd
    through the same padding, written as a gather whose indices np.pad itself produced.

Tolerance (the project's policy, tests/conv/naive_conv.h): the reference is computed in float64
from the float32 values convkit reads, and every output element must satisfy

    |convkit - reference| <= 2 (K + 2) u S + 1e-30,   u = 2^-24,

with S = sum over the element's terms of |term| (e.g. sum |x||w| + |b| for Y, sum |dY||w| for
dL/dX) and K = the number of those terms, both computed by running the same reference on |values|
and on ones. That is the rigorous bound for a float32 sum of K products in any order (Higham 3.1);
Winograd (reported by CONVKIT_VERBOSE) gets its stated 4x. For context the table also shows
PyTorch's own float32 error on the same cases in the same units.

Also checks: N = 0, D2L 7.3's output-size example, NaN propagation, the output files' dtype
(float32, little-endian, C order), and that bad inputs exit with status 2, a message on stderr and
no file left in the output directory.

Run with the system python (numpy + torch 1.13):
    /usr/bin/python3 scripts/conformance.py [build/release/bin/convkit] [--cases 300] [--seed 0]
Exit status 0 when everything passes, 1 on any failure, 2 when the binary is missing.
"""

import argparse
import math
import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

U = 2.0**-24
TORCH_MODES = ("zeros", "reflect", "replicate", "circular")
ALL_MODES = TORCH_MODES + ("symmetric", "constant")
NP_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap", "symmetric": "symmetric"}


# ----------------------------------------------------------------------------------------------
# Cases


@dataclass
class Case:
    idx: int
    batched: bool
    N: int
    C: int
    H: int
    W: int
    O: int
    groups: int
    kH: int
    kW: int
    stride: tuple  # (sh, sw)
    stride_spec: str  # what the CLI gets: "S" or "SH,SW"
    dilation: tuple
    dilation_spec: str
    pad_kind: str  # int | pair | four | same | valid
    pad_values: tuple  # int: (p,), pair: (ph, pw), four: (l, r, t, b), same/valid: ()
    mode: str
    value: float
    bias: bool
    formats: dict  # array name -> (dtype str, order)
    syntax_eq: bool = False  # --opt=value instead of --opt value
    wide: bool = False
    tags: list = field(default_factory=list)

    # (left, right, top, bottom) by the documented rules.
    def pads(self):
        if self.pad_kind == "int":
            p = self.pad_values[0]
            return (p, p, p, p)
        if self.pad_kind == "pair":
            ph, pw = self.pad_values
            return (pw, pw, ph, ph)
        if self.pad_kind == "four":
            return tuple(self.pad_values)
        if self.pad_kind == "valid":
            return (0, 0, 0, 0)
        t, b = tf_same(self.H, self.kH, self.stride[0], self.dilation[0])
        l, r = tf_same(self.W, self.kW, self.stride[1], self.dilation[1])
        return (l, r, t, b)

    def out_hw(self):
        l, r, t, b = self.pads()
        ho = (self.H + t + b - self.dilation[0] * (self.kH - 1) - 1) // self.stride[0] + 1
        wo = (self.W + l + r - self.dilation[1] * (self.kW - 1) - 1) // self.stride[1] + 1
        return ho, wo

    def valid(self):
        l, r, t, b = self.pads()
        ho, wo = self.out_hw()
        if ho < 1 or wo < 1:
            return False
        if self.mode == "reflect" and (max(t, b) >= self.H or max(l, r) >= self.W):
            return False
        if self.mode in ("circular", "symmetric") and (max(t, b) > self.H or max(l, r) > self.W):
            return False
        return True

    # True when PyTorch has every option this case uses.
    def torch_native(self):
        if self.mode not in TORCH_MODES or self.pad_kind == "four":
            return False
        return not (self.pad_kind == "same" and self.stride != (1, 1))

    def padding_spec(self):
        if self.pad_kind in ("same", "valid"):
            return self.pad_kind
        return ",".join(str(v) for v in self.pad_values)

    def describe(self):
        x = (self.N, self.C, self.H, self.W) if self.batched else (self.C, self.H, self.W)
        return (
            f"x{x} w{(self.O, self.C // self.groups, self.kH, self.kW)} g={self.groups} "
            f"s={self.stride_spec} d={self.dilation_spec} pad={self.padding_spec()} "
            f"mode={self.mode}{'(' + repr(self.value) + ')' if self.mode == 'constant' else ''} "
            f"bias={self.bias}"
        )


def tf_same(n, k, s, d):
    """TensorFlow's 'same' split along one axis (issue 3): (before, after)."""
    out = -(-n // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def draw_pair(rng, lo, hi, p_pair):
    if rng.random() < p_pair:
        a, b = rng.randint(lo, hi), rng.randint(lo, hi)
        return (a, b), f"{a},{b}"
    a = rng.choice([1, 1, 2, 3]) if lo == 1 and hi == 3 else rng.randint(lo, hi)
    return (a, a), str(a)


def draw_format(rng):
    r = rng.random()
    if r < 0.70:
        return ("<f4", "C")
    if r < 0.80:
        return ("<f8", "C")
    if r < 0.88:
        return ("<f4", "F")
    if r < 0.92:
        return ("<f8", "F")
    if r < 0.95:
        return (">f4", "C")
    if r < 0.97:
        return ("<f2", "C")
    return ("<i4", "C")


def draw_case(rng, idx, wide=False):
    while True:
        batched = rng.random() < 0.8
        N = rng.randint(1, 3) if batched else 1
        if wide:
            # Sizes past the tiny path, zero padding: the fast kernels (direct, GEMM, Winograd).
            C = rng.randint(8, 32)
            gkind = rng.choice(["one", "one", "depthwise", "divisor"])
            if gkind == "one":
                groups, O = 1, rng.randint(8, 32)
            elif gkind == "depthwise":
                groups = C
                O = C * rng.choice([1, 1, 2])
            else:
                groups = rng.choice([d for d in range(2, C) if C % d == 0] or [1])
                O = groups * rng.randint(1, 4)
            if rng.random() < 0.2:
                # Few input channels, wider kernels (stem-like): smallc and the 1-D Winograd rows.
                C, groups, O = rng.randint(1, 4), 1, rng.randint(8, 24)
                kH, kW = rng.randint(2, 7), rng.randint(2, 7)
                stride, stride_spec = draw_pair(rng, 1, 2, 0.3)
                dilation, dilation_spec = (1, 1), "1"
            elif rng.random() < 0.5:
                kH = kW = 3
                stride, stride_spec = (1, 1), "1"
                dilation, dilation_spec = (1, 1), "1"
            else:
                kH, kW = rng.randint(1, 5), rng.randint(1, 5)
                stride, stride_spec = draw_pair(rng, 1, 2, 0.3)
                dilation, dilation_spec = draw_pair(rng, 1, 2, 0.3)
            pad_kind = rng.choice(["int", "pair", "four", "same", "valid"])
            n_values = {"int": 1, "pair": 2, "four": 4}.get(pad_kind, 0)
            pad_values = tuple(rng.randint(0, 2) for _ in range(n_values))
            mode = rng.choice(["zeros", "zeros", "zeros", "constant"])  # constant 0 reads zeros too
        else:
            C = rng.randint(1, 8)
            gkind = rng.choice(["one", "depthwise", "multiplier", "divisor"])
            if gkind == "one":
                groups, O = 1, rng.randint(1, 8)
            elif gkind == "depthwise":
                groups, O = C, C
            elif gkind == "multiplier":
                groups, O = C, C * rng.randint(2, 3)
            else:
                groups = rng.choice([d for d in range(2, C) if C % d == 0] or [1])
                O = groups * rng.randint(1, max(1, 8 // groups))
            kH, kW = rng.randint(1, 5), rng.randint(1, 5)
            if rng.random() < 0.3:
                kW = kH
            stride, stride_spec = draw_pair(rng, 1, 3, 0.3)
            dilation, dilation_spec = draw_pair(rng, 1, 3, 0.3)
            kinds = ["int", "pair", "four", "same", "valid"]
            pad_kind = rng.choices(kinds, [25, 15, 20, 25, 15])[0]
            if pad_kind == "same" and rng.random() < 0.5:
                stride, stride_spec = (1, 1), "1"  # so PyTorch's own 'same' gets its share
            if pad_kind == "int":
                pad_values = (rng.randint(0, 3),)
            elif pad_kind == "pair":
                pad_values = (rng.randint(0, 3), rng.randint(0, 3))
            elif pad_kind == "four":
                pad_values = tuple(rng.randint(0, 3) for _ in range(4))
            else:
                pad_values = ()
            mode = rng.choices(ALL_MODES, [35, 13, 13, 13, 13, 13])[0]
        value = rng.choice([0.0, -1.5, 0.5, 2.0, 1e-3]) if mode == "constant" and not wide else 0.0
        equal_to_input = not wide and rng.random() < 0.1
        for _ in range(50):
            if wide:
                H, W = rng.randint(6, 24), rng.randint(6, 24)
            elif equal_to_input:
                H, W = kH, kW
            else:
                H, W = rng.randint(1, 14), rng.randint(1, 14)
            case = Case(idx, batched, N, C, H, W, O, groups, kH, kW, stride, stride_spec,
                        dilation, dilation_spec, pad_kind, pad_values, mode, value,
                        rng.random() < 0.5, {}, syntax_eq=rng.random() < 0.3, wide=wide)
            if case.valid():
                case.formats = {k: draw_format(rng) for k in ("x", "w", "b", "gy")}
                case.tags = tags_of(case, equal_to_input)
                return case
            if equal_to_input:
                break


def tags_of(c, equal_to_input):
    """Cross-cutting labels for the second table."""
    t = ["batched" if c.batched else "unbatched"]
    if c.wide:
        t.append("wide (8-32 channels, zero padding)")
    if c.groups == 1:
        t.append("groups 1")
    elif c.groups == c.C and c.O == c.C:
        t.append("groups depthwise")
    elif c.groups == c.C:
        t.append("groups channel multiplier")
    else:
        t.append("groups other divisor")
    if (c.kH, c.kW) == (1, 1):
        t.append("kernel 1x1")
    if c.kH != c.kW:
        t.append("kernel non-square")
    if equal_to_input:
        t.append("kernel = input size")
    if c.stride != (1, 1):
        t.append("stride > 1")
    if "," in c.stride_spec or "," in c.dilation_spec:
        t.append("stride/dilation (h,w) pair")
    if c.dilation != (1, 1):
        t.append("dilation > 1")
    t.append("bias" if c.bias else "no bias")
    for k, (dt, order) in c.formats.items():
        if k == "b" and not c.bias:
            continue
        if dt == "<f8":
            t.append("float64 files")
        if order == "F":
            t.append("Fortran-order files")
        if dt == ">f4":
            t.append("big-endian float32 files")
        if dt == "<i4":
            t.append("int32 files")
        if dt == "<f2":
            t.append("float16 files")
    if c.syntax_eq:
        t.append("--opt=value syntax")
    return sorted(set(t), key=t.index)


def families_of(c):
    """The option families (first table) a case exercises; a case may be in several."""
    fam = []
    if c.torch_native():
        if c.mode == "zeros":
            fam.append({"int": "zeros, padding P", "pair": "zeros, padding (PH,PW)",
                        "same": "zeros, 'same' (stride 1)", "valid": "zeros, 'valid'"}[c.pad_kind])
        else:
            fam.append(f"{c.mode} (P, PH,PW, 'same' stride 1, 'valid')")
        return [("PyTorch", f) for f in fam]
    if c.pad_kind == "four":
        fam.append("four-sided padding")
    if c.pad_kind == "same" and c.stride != (1, 1):
        fam.append("'same' at stride > 1")
    if c.mode == "symmetric":
        fam.append("symmetric mode")
    if c.mode == "constant":
        fam.append("constant mode (value)")
    return [("documented", f) for f in fam]


# ----------------------------------------------------------------------------------------------
# Files


def make_array(rng_np, shape, fmt, scale=1.0):
    """Random values as convkit will read them (float64 holding float32 values) and as saved."""
    dt, order = fmt
    if dt == "<i4":
        saved = rng_np.integers(-4, 5, size=shape).astype("<i4")
        seen = saved.astype(np.float32).astype(np.float64)
    elif dt == "<f2":
        saved = (rng_np.standard_normal(shape) * scale).astype("<f2")
        seen = saved.astype(np.float64)  # every float16 is a float32
    elif dt == "<f8":
        saved = (rng_np.standard_normal(shape) * scale).astype("<f8")
        seen = saved.astype(np.float32).astype(np.float64)  # convkit rounds float64 to float32
    else:
        v = (rng_np.standard_normal(shape) * scale).astype(np.float32)
        saved = v.astype(dt)
        seen = v.astype(np.float64)
    if order == "F":
        saved = np.asfortranarray(saved)
    return saved, seen


def check_saved(path, shape):
    """Loads a convkit output: must be float32 little-endian C order of the expected shape."""
    try:
        a = np.load(path)
    except (OSError, ValueError) as e:
        return None, [f"cannot load {os.path.basename(path)}: {e}"]
    problems = []
    if a.dtype.str != "<f4":
        problems.append(f"dtype {a.dtype.str}, expected <f4")
    if a.ndim >= 2 and not a.flags.c_contiguous:
        problems.append("not C order")
    if tuple(a.shape) != tuple(shape):
        problems.append(f"shape {a.shape}, expected {tuple(shape)}")
    return a.astype(np.float64), problems


# ----------------------------------------------------------------------------------------------
# References


def index_pad(x, pads, mode, value):
    """np.pad's definition of a padding mode as a differentiable gather on x (..., H, W)."""
    l, r, t, b = pads
    H, W = x.shape[-2:]
    if mode == "constant":
        ih = np.pad(np.arange(H), (t, b), mode="constant", constant_values=-1)
        iw = np.pad(np.arange(W), (l, r), mode="constant", constant_values=-1)
        rows, cols = torch.from_numpy(np.clip(ih, 0, None)), torch.from_numpy(np.clip(iw, 0, None))
        g = x[..., rows, :][..., cols]
        mask = torch.from_numpy((ih >= 0)[:, None] & (iw >= 0)[None, :])
        return torch.where(mask, g, torch.full_like(g, value))
    ih = np.pad(np.arange(H), (t, b), mode=NP_MODE[mode])
    iw = np.pad(np.arange(W), (l, r), mode=NP_MODE[mode])
    return x[..., torch.from_numpy(ih), :][..., torch.from_numpy(iw)]


def reference(c, x, w, b, gy, value, dtype=torch.float64):
    """(Y, dL/dX, dL/dW, dL/dB) as float64 numpy arrays; x is batched or not as the case is."""
    xt = torch.tensor(x, dtype=dtype, requires_grad=True)
    wt = torch.tensor(w, dtype=dtype, requires_grad=True)
    bt = torch.tensor(b, dtype=dtype, requires_grad=True)
    # Unbatched (C, H, W) is a batch of one (PyTorch 1.13's nn.Conv2d refuses 3-D input with
    # padding_mode circular, so the reference always runs batched).
    xb = xt if c.batched else xt.unsqueeze(0)
    if c.torch_native():
        padding = {"int": lambda: c.pad_values[0], "pair": lambda: tuple(c.pad_values),
                   "same": lambda: "same", "valid": lambda: "valid"}[c.pad_kind]()
        m = torch.nn.Conv2d(c.C, c.O, (c.kH, c.kW), stride=c.stride, padding=padding,
                            dilation=c.dilation, groups=c.groups, bias=True,
                            padding_mode=c.mode, dtype=dtype)
        # nn.Conv2d's own code path (F.pad for the modes), with our tensors as its parameters.
        y = m._conv_forward(xb, wt, bt)
    else:
        pads = c.pads()
        if c.mode in TORCH_MODES:
            xp = F.pad(xb, pads, mode="constant" if c.mode == "zeros" else c.mode)
        else:
            xp = index_pad(xb, pads, c.mode, value)
        y = F.conv2d(xp, wt, bt, c.stride, 0, c.dilation, c.groups)
    if not c.batched:
        y = y.squeeze(0)
    y.backward(torch.tensor(gy, dtype=dtype))
    return [t.detach().to(torch.float64).numpy() for t in (y, xt.grad, wt.grad, bt.grad)]


def np_pad_forward(c, x, w, b):
    """Forward by the letter of the documentation for symmetric/constant: np.pad, valid conv."""
    l, r, t, bt = c.pads()
    xb = x if c.batched else x[None]
    widths = ((0, 0), (0, 0), (t, bt), (l, r))
    if c.mode == "constant":
        xp = np.pad(xb, widths, mode="constant", constant_values=c.value)
    else:
        xp = np.pad(xb, widths, mode=NP_MODE[c.mode])
    y = F.conv2d(torch.from_numpy(xp), torch.from_numpy(w), torch.from_numpy(b), c.stride, 0,
                 c.dilation, c.groups).numpy()
    return y if c.batched else y[0]


# ----------------------------------------------------------------------------------------------
# Running convkit


def run_cli(binary, args, env):
    p = subprocess.run([binary] + args, capture_output=True, text=True, env=env)
    impls = re.findall(r"impl=(\S+)", p.stderr)
    return p, impls


def impls_of(stderr, pass_name):
    """The implementations CONVKIT_VERBOSE reported for one pass (fwd, bwd_data, bwd_weight)."""
    return re.findall(r"conv2d " + pass_name + r" .*?impl=(\S+)", stderr)


def opt(c, name, value):
    return [f"{name}={value}"] if c.syntax_eq else [name, str(value)]


def cli_args(c, files, rng):
    """The option list, in shuffled order, with defaults sometimes spelled out."""
    groups = [opt(c, "--input", files["x"]), opt(c, "--weight", files["w"])]
    if c.bias:
        groups.append(opt(c, "--bias", files["b"]))
    if c.stride != (1, 1) or "," in c.stride_spec or rng.random() < 0.3:
        groups.append(opt(c, "--stride", c.stride_spec))
    if c.dilation != (1, 1) or "," in c.dilation_spec or rng.random() < 0.3:
        groups.append(opt(c, "--dilation", c.dilation_spec))
    if c.padding_spec() != "0" or rng.random() < 0.3:
        groups.append(opt(c, "--padding", c.padding_spec()))
    if c.mode != "zeros" or rng.random() < 0.3:
        groups.append(opt(c, "--padding-mode", c.mode))
    if c.mode == "constant" and (c.value != 0.0 or rng.random() < 0.5):
        groups.append(opt(c, "--padding-value", repr(c.value)))
    if c.groups != 1 or rng.random() < 0.3:
        groups.append(opt(c, "--groups", c.groups))
    rng.shuffle(groups)
    return [a for g in groups for a in g]


@dataclass
class Result:
    ok: bool
    ratio: float  # max |err| / bound over every array
    rel: float  # max |err| / S
    torch_ratio: float  # PyTorch float32's own max |err| / bound (PyTorch families), else nan
    impls: list
    message: str = ""


def kernelwise(mag):
    """Winograd's weight gradient mixes the taps of a kernel in its transforms, so each element's
    rounding error scales with the largest S among its kernel's taps (O, C/g, kh, kw)."""
    return np.broadcast_to(mag.max(axis=(2, 3), keepdims=True), mag.shape)


def rowwise(mag, reach):
    """A Winograd forward along rows mixes the outputs of a tile (up to reach + 1 of them), so each
    output's rounding error scales with the largest S within reach along its row."""
    out = mag.copy()
    for d in range(1, reach + 1):
        out[..., d:] = np.maximum(out[..., d:], mag[..., :-d])
        out[..., :-d] = np.maximum(out[..., :-d], mag[..., d:])
    return out


def tilewise(mag, reach_h, reach_w):
    """A 2-D Winograd mixes the outputs of a tile, so each output's rounding error scales with the
    largest S within reach_h rows and reach_w columns."""
    return np.swapaxes(rowwise(np.swapaxes(rowwise(mag, reach_w), -1, -2), reach_h), -1, -2)


def compare(got, ref, mag, terms, factor, floor=0.0):
    """Max |got - ref| / bound and max |got - ref| / S for one array."""
    err = np.abs(got - ref)
    bound = (factor * 2.0 * (terms + 2.0) + floor) * U * mag + 1e-30
    ratio = err / bound
    rel = err / np.maximum(mag, 1e-30)
    if np.isnan(got).any() and not np.isnan(ref).any():
        return math.inf, math.inf
    return (float(ratio.max()) if ratio.size else 0.0, float(rel.max()) if rel.size else 0.0)


def run_case(binary, c, work, seed, env):
    rng_np = np.random.default_rng(seed)
    rng = random.Random(seed)
    xshape = (c.N, c.C, c.H, c.W) if c.batched else (c.C, c.H, c.W)
    ho, wo = c.out_hw()
    yshape = (c.N, c.O, ho, wo) if c.batched else (c.O, ho, wo)
    wshape = (c.O, c.C // c.groups, c.kH, c.kW)
    saved, seen = {}, {}
    fan_in = (c.C // c.groups) * c.kH * c.kW
    for k, shape, scale in (("x", xshape, 1.0), ("w", wshape, 1.0 / math.sqrt(fan_in)),
                            ("b", (c.O,), 1.0), ("gy", yshape, 1.0)):
        saved[k], seen[k] = make_array(rng_np, shape, c.formats[k], scale)
    if not c.bias:
        seen["b"] = np.zeros(c.O)
    files = {}
    for k in saved:
        files[k] = os.path.join(work, f"{k}.npy")
        np.save(files[k], saved[k])
    out = {k: os.path.join(work, f"out_{k}.npy") for k in ("y", "gx", "gw", "gb")}
    for f in out.values():
        if os.path.exists(f):
            os.remove(f)

    args = cli_args(c, files, rng)
    fwd = ["conv2d"] + args + opt(c, "--output", out["y"])
    bwd = (["conv2d-backward"] + args + opt(c, "--grad-output", files["gy"]) +
           opt(c, "--grad-input", out["gx"]) + opt(c, "--grad-weight", out["gw"]) +
           opt(c, "--grad-bias", out["gb"]))
    impls = []
    p1, i1 = run_cli(binary, fwd, env)
    p2, i2 = run_cli(binary, bwd, env)
    impls = i1 + i2
    cmdline = "convkit " + shlex.join(fwd)
    for p in (p1, p2):
        if p.returncode != 0 and "CONVKIT_IMPL" in env and "does not apply" in p.stderr:
            return None  # the forced implementation cannot run this case: skipped
        if p.returncode != 0:
            return Result(False, math.inf, math.inf, math.nan, impls,
                          f"exit {p.returncode}: {p.stderr.strip()}\n    {cmdline}")

    ref = reference(c, seen["x"], seen["w"], seen["b"], seen["gy"], c.value)
    mag = reference(c, np.abs(seen["x"]), np.abs(seen["w"]), np.abs(seen["b"]),
                    np.abs(seen["gy"]), abs(c.value))
    ones_b = np.ones(c.O) if c.bias else np.zeros(c.O)
    cnt = reference(c, np.ones(xshape), np.ones(wshape), ones_b, np.ones(yshape), 1.0)
    problems = []
    if c.mode in ("symmetric", "constant"):
        direct = np_pad_forward(c, seen["x"], seen["w"], seen["b"])
        if not np.allclose(direct, ref[0], rtol=1e-12, atol=1e-12):
            problems.append("internal: np.pad forward and the gather reference disagree")

    got = []
    for k, shape in (("y", yshape), ("gx", xshape), ("gw", wshape), ("gb", (c.O,))):
        a, pr = check_saved(out[k], shape)
        problems += [f"{k}: {s}" for s in pr]
        got.append(a)
    worst_ratio, worst_rel = 0.0, 0.0
    if not problems:
        i_wgt = impls_of(p2.stderr, "bwd_weight")
        i_dat = impls_of(p2.stderr, "bwd_data")
        for name, g, r, m, n, ran in zip(("Y", "dX", "dW", "dB"), got, ref, mag, cnt,
                                         (i1, i2, i_wgt, i2)):
            factor = 4.0 if any(s.startswith("wino") for s in ran) else 1.0
            floor = 0.0
            if name == "Y" and any(s.startswith("winograd1d") for s in ran):
                # The 1-D Winograd rows' forward (src/conv/impl_smallc.cpp): over the largest S
                # in the output's tile of 4 along its row (an output that reads only zeros gets
                # its tile's rounding noise).
                m = rowwise(m, 3)
            if name in ("Y", "dX") and any(s.startswith("winograd_f4x3")
                                           for s in (ran if name == "Y" else i_dat)):
                # F(4x4, 3x3) (src/conv/impl_winograd.cpp): over the largest S in the output's
                # 4 x 4 tile (a dilated layer's tiles lie on its phase grid, d apart).
                m = tilewise(m, 3 * c.dilation[0], 3 * c.dilation[1])
            if name == "dX" and any(s.startswith("winograd1d") for s in i_dat):
                # Its strided backward-data: a tile holds 4 columns of each of gx's sW phases.
                m = rowwise(m, 4 * c.stride[1] - 1)
            if name == "dW" and factor > 1.0:
                # Winograd's weight-gradient bound (src/conv/impl_winograd_bwd_weight.cpp): over
                # the kernel's largest S, and 256 u S more.
                m, floor = kernelwise(m), 256.0
            ratio, rel = compare(g, r, m, n, factor, floor)
            worst_ratio, worst_rel = max(worst_ratio, ratio), max(worst_rel, rel)
            if not ratio <= 1.0:
                e = np.abs(g - r) / ((factor * 2.0 * (n + 2.0) + floor) * U * m + 1e-30)
                at = np.unravel_index(int(np.nanargmax(np.where(np.isnan(e), np.inf, e))), e.shape)
                problems.append(f"{name}{tuple(int(i) for i in at)}: got {g[at]!r}, expected "
                                f"{r[at]!r} (err/bound {ratio:.3g})")

    torch_ratio = math.nan
    if c.torch_native():
        # PyTorch's own float32 result on the same float32 inputs, in the same units.
        t32 = reference(c, seen["x"].astype(np.float32), seen["w"].astype(np.float32),
                        seen["b"].astype(np.float32), seen["gy"].astype(np.float32), c.value,
                        dtype=torch.float32)
        torch_ratio = max(compare(g, r, m, n, 1.0)[0] for g, r, m, n in zip(t32, ref, mag, cnt))
    msg = ""
    if problems:
        msg = "; ".join(problems) + f"\n    {cmdline}\n    convkit " + shlex.join(bwd)
    return Result(not problems, worst_ratio, worst_rel, torch_ratio, impls, msg)


# ----------------------------------------------------------------------------------------------
# Edge cases and error paths


def shape_of(path):
    try:
        return tuple(np.load(path).shape)
    except (OSError, ValueError) as e:
        return f"unreadable: {e}"


def edge_checks(binary, work, env):
    """[(name, ok, detail)]: N = 0, D2L 7.3's size example, NaN propagation."""
    out = []
    rng = np.random.default_rng(7)
    y = os.path.join(work, "edge_y.npy")

    def run(args):
        if os.path.exists(y):
            os.remove(y)
        return subprocess.run([binary, "conv2d"] + args + ["--output", y], capture_output=True,
                              text=True, env=env)

    xf, wf = os.path.join(work, "edge_x.npy"), os.path.join(work, "edge_w.npy")
    # N = 0: an empty (0, O, Ho, Wo) output.
    np.save(xf, np.zeros((0, 3, 6, 5), np.float32))
    np.save(wf, rng.standard_normal((4, 3, 3, 2)).astype(np.float32))
    p = run(["--input", xf, "--weight", wf, "--padding", "1"])
    want = tuple(F.conv2d(torch.zeros(0, 3, 6, 5), torch.zeros(4, 3, 3, 2), padding=1).shape)
    got = shape_of(y) if p.returncode == 0 else None
    out.append(("N = 0 gives an empty output", got == want, f"shape {got}, PyTorch {want}"))

    # D2L 7.3: 8x8 input, kernel (3, 5), padding (0, 1), stride (3, 4) -> 2x2.
    np.save(xf, rng.standard_normal((1, 1, 8, 8)).astype(np.float32))
    np.save(wf, rng.standard_normal((1, 1, 3, 5)).astype(np.float32))
    p = run(["--input", xf, "--weight", wf, "--padding", "0,1", "--stride", "3,4"])
    got = shape_of(y) if p.returncode == 0 else None
    out.append(("D2L 7.3 size example -> 2x2", got == (1, 1, 2, 2), f"shape {got}"))

    # NaN: outputs are NaN exactly where the NaN (or a padded copy of it) is in the receptive
    # field; all others finite and equal to the convolution with the NaN replaced by 0.
    for mode, pad in (("zeros", "2"), ("reflect", "2,1"), ("circular", "1,2,0,2")):
        x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
        x[1, 2, 0, 5] = np.nan
        w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
        np.save(xf, x)
        np.save(wf, w)
        p = run(["--input", xf, "--weight", wf, "--padding", pad, "--padding-mode", mode,
                 "--dilation", "1,2"])
        vals = [int(v) for v in pad.split(",")]
        pads = vals * 4 if len(vals) == 1 else vals if len(vals) == 4 else [vals[1], vals[1],
                                                                             vals[0], vals[0]]
        fmode = "constant" if mode == "zeros" else mode

        def conv(a, k):  # float64 reference: pad as the mode says, then a valid convolution
            return F.conv2d(F.pad(torch.from_numpy(a.astype(np.float64)), pads, mode=fmode),
                            torch.from_numpy(k.astype(np.float64)), dilation=(1, 2)).numpy()

        hit = conv(np.isnan(x), np.ones_like(w)) > 0
        clean = np.nan_to_num(x, nan=0.0)
        ref, mag = conv(clean, w), conv(np.abs(clean), np.abs(w))
        ok, detail = False, p.stderr.strip()
        if p.returncode == 0:
            g, problems = check_saved(y, ref.shape)
            if problems:
                ok, detail = False, "; ".join(problems)
            else:
                same_mask = np.array_equal(np.isnan(g), hit)
                fin = ~hit
                close = np.all(np.abs(g[fin] - ref[fin]) <= 2 * (27 + 2) * U * mag[fin] + 1e-30)
                ok = same_mask and close and np.isfinite(g[fin]).all()
                detail = (f"{int(hit.sum())} NaN outputs expected, {int(np.isnan(g).sum())} got, "
                          f"others {'match' if close else 'MISMATCH'}")
        out.append((f"NaN propagation ({mode}, pad {pad})", ok, detail))
    return out


def error_checks(binary, work, env):
    """[(name, ok, detail)]: each bad call must exit 2, say why on stderr, write no file."""
    rng = np.random.default_rng(11)
    d = os.path.join(work, "errors")
    os.makedirs(d, exist_ok=True)
    src = os.path.join(work, "errsrc")
    os.makedirs(src, exist_ok=True)

    def save(name, a):
        path = os.path.join(src, name)
        np.save(path, a)
        return path

    x = save("x.npy", rng.standard_normal((2, 4, 5, 6)).astype(np.float32))
    w = save("w.npy", rng.standard_normal((6, 4, 3, 3)).astype(np.float32))
    w2 = save("w2.npy", rng.standard_normal((6, 2, 3, 3)).astype(np.float32))
    w5 = save("w5.npy", rng.standard_normal((6, 5, 3, 3)).astype(np.float32))
    big = save("big.npy", rng.standard_normal((6, 4, 7, 3)).astype(np.float32))
    b_bad = save("b_bad.npy", np.zeros(5, np.float32))
    gy_bad = save("gy_bad.npy", np.zeros((2, 6, 2, 2), np.float32))
    cplx = save("cplx.npy", np.zeros((2, 4, 5, 6), np.complex64))
    trunc = os.path.join(src, "trunc.npy")
    with open(x, "rb") as f:
        data = f.read()
    with open(trunc, "wb") as f:
        f.write(data[: len(data) - 10])
    missing = os.path.join(src, "does_not_exist.npy")
    y = os.path.join(d, "y.npy")
    gx, gw, gb = (os.path.join(d, n) for n in ("gx.npy", "gw.npy", "gb.npy"))
    fwd = ["conv2d", "--input", x, "--output", y]
    grads = ["--grad-input", gx, "--grad-weight", gw, "--grad-bias", gb]
    cases = [
        ("groups not dividing C", fwd + ["--weight", w2, "--groups", "3"]),
        ("weight channels != C/groups", fwd + ["--weight", w5]),
        ("kernel larger than padded input", fwd + ["--weight", big]),
        ("reflect pad >= input size", fwd + ["--weight", w, "--padding", "5",
                                              "--padding-mode", "reflect"]),
        ("circular pad > input size", fwd + ["--weight", w, "--padding", "0,0,6,0",
                                              "--padding-mode", "circular"]),
        ("symmetric pad > input size", fwd + ["--weight", w, "--padding", "7,1",
                                               "--padding-mode", "symmetric"]),
        ("padding with 3 values", fwd + ["--weight", w, "--padding", "1,2,3"]),
        ("negative padding", fwd + ["--weight", w, "--padding", "-1"]),
        ("stride 0", fwd + ["--weight", w, "--stride", "0"]),
        ("dilation 'x'", fwd + ["--weight", w, "--dilation", "x"]),
        ("unknown padding mode", fwd + ["--weight", w, "--padding-mode", "mirror"]),
        ("--padding-value without constant", fwd + ["--weight", w, "--padding-value", "1"]),
        ("unknown option", fwd + ["--weight", w, "--frobnicate", "1"]),
        ("bias shape != (O,)", fwd + ["--weight", w, "--bias", b_bad]),
        ("input file missing", ["conv2d", "--input", missing, "--weight", w, "--output", y]),
        ("truncated .npy", ["conv2d", "--input", trunc, "--weight", w, "--output", y]),
        ("complex64 dtype", ["conv2d", "--input", cplx, "--weight", w, "--output", y]),
        ("missing --output", ["conv2d", "--input", x, "--weight", w]),
        ("backward without --grad-*", ["conv2d-backward", "--input", x, "--weight", w,
                                       "--grad-output", gy_bad]),
        ("backward grad-output wrong shape",
         ["conv2d-backward", "--input", x, "--weight", w, "--grad-output", gy_bad] + grads),
        ("backward, two outputs one file",
         ["conv2d-backward", "--input", x, "--weight", w, "--padding", "1", "--grad-output",
          save("gy.npy", np.zeros((2, 6, 5, 6), np.float32)), "--grad-input", gx,
          "--grad-weight", gx]),
        ("backward, output dir missing",
         ["conv2d-backward", "--input", x, "--weight", w, "--padding", "1", "--grad-output",
          save("gy.npy", np.zeros((2, 6, 5, 6), np.float32)), "--grad-input", gx,
          "--grad-weight", os.path.join(d, "no_such_dir", "gw.npy")]),
    ]
    out = []
    for name, args in cases:
        for f in os.listdir(d):
            os.remove(os.path.join(d, f))
        p = subprocess.run([binary] + args, capture_output=True, text=True, env=env)
        left = sorted(os.listdir(d))
        ok = p.returncode == 2 and p.stderr.strip() != "" and not left
        msg = p.stderr.strip().splitlines()[0] if p.stderr.strip() else "(no message)"
        detail = f"exit {p.returncode}; {msg[:110]}" + (f"; LEFT {left}" if left else "")
        out.append((name, ok, detail))
    return out


# ----------------------------------------------------------------------------------------------
# Main


def table(rows, headers):
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths)) + " |"  # noqa
    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def fmt(v):
    if isinstance(v, float) and math.isnan(v):
        return "-"
    if v == math.inf:
        return "inf"
    return f"{v:.2e}" if isinstance(v, float) and v < 0.01 else f"{v:.3f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", nargs="?", default="build/release/bin/convkit",
                    help="the convkit binary (default build/release/bin/convkit)")
    ap.add_argument("--cases", type=int, default=300, help="random cases (default 300)")
    ap.add_argument("--wide", type=int, default=40,
                    help="extra cases with 8-32 channels, H and W up to 24 and zero padding, "
                         "which reach the direct, GEMM and Winograd paths (default 40)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--impl", default="",
                    help="force convkit implementations (CONVKIT_IMPL), e.g. gemm_generic; the "
                         "names must apply to every case (ref always does; the fast paths only "
                         "with zero padding: use --cases 0)")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    a = ap.parse_args()
    if not os.access(a.binary, os.X_OK):
        print(f"conformance: '{a.binary}' is not an executable; build convkit first "
              "(cmake --preset release && cmake --build --preset release)", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    # PyTorch's note that an even 'same' kernel makes a padded copy: true and not our concern.
    warnings.filterwarnings("ignore", message="Using padding='same'")
    env = dict(os.environ, CONVKIT_VERBOSE="1")
    if a.impl:
        env["CONVKIT_IMPL"] = a.impl
    rng = random.Random(a.seed)
    cases = [draw_case(rng, i) for i in range(a.cases)]
    cases += [draw_case(rng, a.cases + i, wide=True) for i in range(a.wide)]
    t0 = time.time()
    fams, tags, impl_count, failures, skipped = {}, {}, {}, [], 0
    with tempfile.TemporaryDirectory(prefix="convkit-conformance-") as work:
        for c in cases:
            res = run_case(a.binary, c, work, a.seed * 1000003 + c.idx, env)
            if res is None:
                skipped += 1
                continue
            if a.verbose:
                print(f"case {c.idx:4d} {'ok  ' if res.ok else 'FAIL'} {res.ratio:7.3f} "
                      f"{c.describe()}")
            if not res.ok:
                failures.append((c, res))
            for key in families_of(c):
                fams.setdefault(key, []).append(res)
            for t in c.tags:
                tags.setdefault(t, []).append(res)
            for s in set(res.impls):
                impl_count[s] = impl_count.get(s, 0) + 1
        plain = dict(os.environ, CONVKIT_VERBOSE="1")  # nothing forced for these
        edges = edge_checks(a.binary, work, plain)
        errors = error_checks(a.binary, work, plain)

    def agg(rs):
        tr = [r.torch_ratio for r in rs if not math.isnan(r.torch_ratio)]
        return (len(rs), fmt(max(r.rel for r in rs)), fmt(max(r.ratio for r in rs)),
                fmt(max(tr)) if tr else "-", "pass" if all(r.ok for r in rs) else
                f"FAIL ({sum(not r.ok for r in rs)})")

    order = {"PyTorch": 0, "documented": 1}
    ranked = sorted(fams.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))
    rows = [(src, f) + agg(rs) for (src, f), rs in ranked]
    print(f"convkit conformance: {len(cases)} cases (seed {a.seed}), {a.binary}"
          f"{', CONVKIT_IMPL=' + a.impl if a.impl else ''}, "
          f"{time.time() - t0:.1f} s\n")
    print("Option families (reference: PyTorch = torch.nn.Conv2d/autograd in float64; documented ="
          " issue 3's definition). A case with several documented options counts in each.")
    print("Errors are over Y, dL/dX, dL/dW and dL/dB; rel = |err| / S; bound = 2 (K + 2) u S.\n")
    table(rows, ("reference", "option family", "cases", "max rel err", "max err/bound",
                 "torch f32 err/bound", "result"))
    print("\nCross-cuts (the same cases):\n")
    table([(t,) + agg(rs) for t, rs in sorted(tags.items())],
          ("cases with", "cases", "max rel err", "max err/bound", "torch f32 err/bound",
           "result"))
    print("\nconvkit implementations that ran (CONVKIT_VERBOSE), cases: " +
          ", ".join(f"{k} {v}" for k, v in sorted(impl_count.items())))
    print("\nEdge cases:\n")
    table([(n, "pass" if ok else "FAIL", d) for n, ok, d in edges], ("check", "result", "detail"))
    print("\nError paths (exit status 2, message on stderr, no file left):\n")
    table([(n, "pass" if ok else "FAIL", d) for n, ok, d in errors],
          ("bad call", "result", "detail"))
    bad = len(failures) + sum(not ok for _, ok, _ in edges + errors)
    for c, res in failures[:20]:
        print(f"\nFAIL case {c.idx}: {c.describe()}\n    {res.message}")
    if len(failures) > 20:
        print(f"\n... and {len(failures) - 20} more failing cases")
    print(f"\n{'ALL PASS' if bad == 0 else f'{bad} FAILURES'}: {len(cases) - skipped} random "
          f"cases{f' ({skipped} skipped: CONVKIT_IMPL={a.impl} does not apply)' if skipped else ''}"
          f", {len(edges)} edge checks, {len(errors)} error paths")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
