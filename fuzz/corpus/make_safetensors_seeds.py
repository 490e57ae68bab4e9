# Writes the safetensors seeds of fuzz/corpus/fuzz_safetensors (format per the safetensors spec, no library):
#   python3 fuzz/corpus/make_safetensors_seeds.py fuzz/corpus/fuzz_safetensors
import json, struct, sys
def write(path, tensors, meta=None):
    header, data, off = {}, b"", 0
    if meta: header["__metadata__"] = meta
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        data += raw; off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)
d = sys.argv[1]
write(d + "/small.safetensors", {"w": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)), "b": ("BF16", [3], b"\x80\x3f" * 3)}, {"format": "pt"})
write(d + "/dtypes.safetensors", {"a": ("F16", [1], b"\x00\x3c"), "i": ("I64", [2], struct.pack("<2q", 5, -5)), "m": ("BOOL", [2], b"\x01\x00"),
      "u": ("U8", [0], b""), "k": ("I32", [1, 1], struct.pack("<i", 9))})
write(d + "/empty.safetensors", {})
