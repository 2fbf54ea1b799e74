"""One benchmark protocol for every engine: workload, streaming client, metrics, load shapes."""
