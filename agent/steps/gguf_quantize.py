"""Step (llama-cpp toolchain): F16 GGUF -> a quantized type via ``llama_model_quantize``.

K-quants work on 256-wide super-blocks; rows of other widths fall back to other types, so the
step records the measured bits per weight and the type mix instead of trusting the type name.
"""

from __future__ import annotations

import resource
import time
from typing import Any

from _gguf_facts import bits_per_weight, layer_errors, open_gguf, tensor_infos
from _stepio import StepRefusal, progress, run_step_main


def main(request: dict[str, Any]) -> dict[str, Any]:
    import llama_cpp

    started = time.monotonic()
    ftype_name = f"LLAMA_FTYPE_MOSTLY_{request['type']}"
    if not hasattr(llama_cpp, ftype_name):
        raise StepRefusal("bad_input", f"llama.cpp has no quantization type {request['type']}")
    progress(f"quantizing to {request['type']}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype_name)
    params.nthread = request["threads"]
    code = llama_cpp.llama_model_quantize(
        request["input_path"].encode(), request["output_path"].encode(), params
    )
    if code != 0:
        raise RuntimeError(f"llama_model_quantize returned {code}")
    quantize_seconds = time.monotonic() - started
    errors = []
    if request["measure_layer_error"]:
        progress("measuring per-tensor weight error against F16")
        errors = layer_errors(open_gguf(request["input_path"]), open_gguf(request["output_path"]))
    return {
        "seconds": round(quantize_seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "bits_per_weight": bits_per_weight(tensor_infos(request["output_path"])),
        "layer_errors": errors,
        "llama_cpp_version": llama_cpp.__version__,
    }


if __name__ == "__main__":
    run_step_main(main)
