"""Requantizes a GGUF file's quantized tensors to one type (scripts/requantize).

    python scripts/requantize.py IN.gguf OUT.gguf Q8_0|Q4_0|Q4_1|Q5_0|Q5_1

Tensors already quantized are dequantized and quantized to the target
type; F32/F16 tensors (norms) are copied. Metadata is copied, with
`general.file_type` set to the target. Deterministic for a given gguf and
numpy version.
"""
import sys

import numpy as np
from gguf import GGMLQuantizationType as T, GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

src, dst, name = sys.argv[1], sys.argv[2], sys.argv[3]
target = T[name]
file_type = LlamaFileType[f"MOSTLY_{name}"]
reader = GGUFReader(src)
arch = reader.fields["general.architecture"].contents()
writer = GGUFWriter(dst, arch)
for field in reader.fields.values():
    if field.name.startswith("GGUF.") or field.name == "general.architecture":
        continue
    value = field.contents()
    if field.name == "general.file_type":
        value = int(file_type)
    sub = field.types[1] if field.types[0] == GGUFValueType.ARRAY and len(field.types) > 1 else None
    writer.add_key_value(field.name, value, field.types[0], sub_type=sub)
block = GGML_QUANT_SIZES[target][0]
for t in reader.tensors:
    shape = [int(x) for x in reversed(t.shape)]  # numpy order: rows, cols
    if t.tensor_type in (T.F32, T.F16) or shape[-1] % block:
        writer.add_tensor(t.name, np.asarray(t.data), raw_dtype=t.tensor_type)
        continue
    weights = dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float32)
    writer.add_tensor(t.name, quantize(weights, target), raw_dtype=target)
writer.write_header_to_file()
writer.write_kv_data_to_file()
writer.write_tensors_to_file()
writer.close()
print(f"{dst}: {len(reader.tensors)} tensors, {name}")
