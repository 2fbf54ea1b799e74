"""A model's GGUF without its weights, and a random-weight GGUF rebuilt from it.

``export``: read a real GGUF and write its metadata (architecture, hyperparameters, the whole
tokenizer) and tensor names/shapes as JSON -- a few MB instead of the weights. ``build``: write a
GGUF with that metadata and random weights (F16 matrices, F32 norms), which llama.cpp serves
exactly like the real model at the same speed (speed does not depend on weight values; quality
does, so nothing built this way is used for quality). This lets the GPU benchmark use the
default model's real tokenizer and shapes where the weights cannot travel.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np


def export_skeleton(gguf_path: Path, target: Path) -> None:
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(gguf_path)
    fields: list[dict[str, Any]] = []
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name in ("general.architecture", "general.file_type"):
            continue
        vtype = field.types[0]
        entry: dict[str, Any] = {"key": name, "type": vtype.name, "value": field.contents()}
        if vtype == GGUFValueType.ARRAY:
            entry["sub_type"] = field.types[-1].name
        fields.append(entry)
    tensors = [
        {"name": t.name, "shape": [int(d) for d in t.shape], "norm": len(t.shape) == 1}
        for t in reader.tensors
    ]
    architecture = reader.get_field("general.architecture").contents()
    target.write_text(
        json.dumps({"architecture": architecture, "fields": fields, "tensors": tensors})
    )


def build_random_gguf(skeleton_path: Path, target: Path, seed: int = 0) -> int:
    """Write the random-weight F16 GGUF; returns the number of parameters."""
    from gguf import GGUFValueType, GGUFWriter, LlamaFileType

    skeleton = json.loads(skeleton_path.read_text())
    writer = GGUFWriter(str(target), skeleton["architecture"])
    for field in skeleton["fields"]:
        sub_type = GGUFValueType[field["sub_type"]] if "sub_type" in field else None
        writer.add_key_value(
            field["key"], field["value"], GGUFValueType[field["type"]], sub_type=sub_type
        )
    writer.add_file_type(LlamaFileType.MOSTLY_F16)
    rng = np.random.default_rng(seed)
    parameters = 0
    for tensor in skeleton["tensors"]:
        shape = tuple(reversed(tensor["shape"]))  # GGUF lists dimensions fastest-first
        if tensor["norm"]:
            data = np.ones(shape, dtype=np.float32)
        else:
            data = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)
        parameters += data.size
        writer.add_tensor(tensor["name"], data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export")
    export.add_argument("gguf", type=Path)
    export.add_argument("skeleton", type=Path)
    build = commands.add_parser("build")
    build.add_argument("skeleton", type=Path)
    build.add_argument("gguf", type=Path)
    args = parser.parse_args()
    if args.command == "export":
        export_skeleton(args.gguf, args.skeleton)
    else:
        print(build_random_gguf(args.skeleton, args.gguf))


if __name__ == "__main__":
    main()
