"""Checkpoint files in the official formats, written and read by our own code.

- torch zip-pickle state dicts (torch.save): infinity_2b_reg.pth (a flat {key: tensor} dict), the VAE .pth
  ({'vae': state_dict}), T5 pytorch_model.bin.
- safetensors, written with struct + json + numpy (the 'safetensors' package is not needed): 8-byte
  little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]},
  '__metadata__': {...}} padded with spaces to a multiple of 8, then the raw little-endian tensor bytes.
  Tensors are stored in sorted-name order, contiguous, no gaps.
- transformers-style shards: '<prefix>-00001-of-0000N.<ext>' + index JSON {'metadata': {'total_size'},
  'weight_map': {key: shard file}}; index names 'model.safetensors.index.json' or 'pytorch_model.bin.index.json'
  (what transformers.modeling_utils.load_sharded_checkpoint looks for, which the official 8B loader uses).
"""
import json
import os
import struct
from typing import Dict

import numpy as np
import torch

_ST_DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}
_ST_BACK = {v: k for k, v in _ST_DTYPES.items()}
_NP = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32,
       "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    return t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()


def save_safetensors(sd: Dict[str, torch.Tensor], path: str, metadata=None):
    header, blobs, off = {}, [], 0
    for name in sorted(sd):
        t = sd[name]
        b = _tensor_bytes(t)
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def load_safetensors(path: str) -> Dict[str, torch.Tensor]:
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[base + a: base + b]
        shape = info["shape"]
        if info["dtype"] == "BF16":
            arr = np.frombuffer(raw, dtype="<i2").reshape(shape).copy()
            out[name] = torch.from_numpy(arr).view(torch.bfloat16)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(_NP[info["dtype"]]).newbyteorder("<")).reshape(shape).copy()
            out[name] = torch.from_numpy(arr)
    return out


def save_torch(obj, path: str):
    """torch.save in the default zip format (what the official .pth / .bin files are)."""
    torch.save(obj, path)


def load_torch(path: str):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:   # torch < 1.13 has no weights_only
        return torch.load(path, map_location="cpu")


def _nbytes(t):
    return t.numel() * t.element_size()


def save_sharded(sd: Dict[str, torch.Tensor], directory: str, max_shard_bytes: int, fmt: str = "safetensors"):
    """Split keys (in state-dict order) into shards of at most max_shard_bytes and write an index."""
    os.makedirs(directory, exist_ok=True)
    shards, cur, size = [], {}, 0
    for k, t in sd.items():
        if cur and size + _nbytes(t) > max_shard_bytes:
            shards.append(cur)
            cur, size = {}, 0
        cur[k] = t
        size += _nbytes(t)
    if cur:
        shards.append(cur)
    n = len(shards)
    prefix, ext, index_name = (("model", "safetensors", "model.safetensors.index.json") if fmt == "safetensors"
                               else ("pytorch_model", "bin", "pytorch_model.bin.index.json"))
    weight_map = {}
    for i, sh in enumerate(shards):
        fname = f"{prefix}-{i + 1:05d}-of-{n:05d}.{ext}"
        path = os.path.join(directory, fname)
        if fmt == "safetensors":
            save_safetensors(sh, path, metadata={"format": "pt"})
        else:
            save_torch(sh, path)
        for k in sh:
            weight_map[k] = fname
    index = {"metadata": {"total_size": sum(_nbytes(t) for t in sd.values())}, "weight_map": weight_map}
    with open(os.path.join(directory, index_name), "w") as f:
        json.dump(index, f, indent=2)
    return os.path.join(directory, index_name)


def load_any(path: str) -> Dict[str, torch.Tensor]:
    """A state dict from: .safetensors, .pth/.bin (torch zip), an index JSON, or a directory holding one."""
    if os.path.isdir(path):
        for name in ("model.safetensors.index.json", "pytorch_model.bin.index.json", "model.safetensors", "pytorch_model.bin"):
            if os.path.exists(os.path.join(path, name)):
                return load_any(os.path.join(path, name))
        raise FileNotFoundError(f"no checkpoint in {path}")
    if path.endswith(".index.json"):
        with open(path) as f:
            index = json.load(f)
        d = os.path.dirname(path)
        out = {}
        for fname in sorted(set(index["weight_map"].values())):
            out.update(load_any(os.path.join(d, fname)))
        return out
    if path.endswith(".safetensors"):
        return load_safetensors(path)
    return load_torch(path)


def cast_state_dict(sd, dtype):
    """Floating tensors to dtype (e.g. bf16 for large files); integer buffers untouched."""
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}
