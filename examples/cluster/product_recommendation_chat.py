"""A product-recommendation chat service on top of a deployed quantplan endpoint.

    python examples/cluster/product_recommendation_chat.py [--base-url URL] "I need a gift..."

It talks to the fleet's one endpoint (`quantplan cluster endpoint plan.yaml`: pass its
--base-url, e.g. http://127.0.0.1:8000) or, without --base-url, to a replica of a deployment
applied with `quantplan apply`. It puts a small product catalog into the system prompt and asks
the model through the OpenAI-compatible /v1/chat/completions API, streaming the answer. Works
the same against the endpoint, a vLLM or a llama.cpp replica; an endpoint that requires a key
gets QUANTPLAN_API_KEY as its bearer token. (The default model has 135M parameters: expect
short, simple answers; the point is the plumbing.)
"""

from __future__ import annotations

import argparse
import json
import os

import httpx

from quantplan.agent.cluster.deployment_state import all_states

PRODUCTS = [
    {"sku": "TEA-01", "name": "Green tea sampler", "price": 18, "tags": ["gift", "drink"]},
    {"sku": "MUG-02", "name": "Insulated travel mug", "price": 25, "tags": ["gift", "travel"]},
    {"sku": "BK-03", "name": "Pocket notebook, 3-pack", "price": 12, "tags": ["office"]},
    {"sku": "HP-04", "name": "Wireless headphones", "price": 79, "tags": ["audio", "travel"]},
]


def find_endpoint() -> tuple[str, str]:
    for state in all_states():
        for record in state.replicas.values():
            return record.base_url, record.served_model
    raise SystemExit(
        "no applied deployment found: run examples/cluster/local_cluster_apply.py "
        "--keep first, or pass --base-url"
    )


def _auth() -> dict[str, str]:
    key = os.environ.get("QUANTPLAN_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def served_model(base_url: str) -> str:
    """The model the endpoint serves (its /v1/models), as every OpenAI client can ask."""
    listed = httpx.get(f"{base_url}/v1/models", headers=_auth(), timeout=30)
    listed.raise_for_status()
    return str(listed.json()["data"][0]["id"])


def recommend(base_url: str, model: str, question: str, max_tokens: int = 96) -> str:
    catalog = "\n".join(f"- {p['sku']}: {p['name']}, ${p['price']}" for p in PRODUCTS)
    messages = [
        {
            "role": "system",
            "content": "You are a shop assistant. Recommend one or two products from this "
            f"catalog and say why, briefly. Only use these products:\n{catalog}",
        },
        {"role": "user", "content": question},
    ]
    body = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "stream": True,
        "temperature": 0.2,
    }
    answer = []
    with httpx.stream(
        "POST", f"{base_url}/v1/chat/completions", json=body, headers=_auth(), timeout=120
    ) as reply:
        reply.raise_for_status()
        for line in reply.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = json.loads(line[6:])["choices"][0].get("delta", {}).get("content") or ""
            print(delta, end="", flush=True)
            answer.append(delta)
    print()
    return "".join(answer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("question", nargs="?", default="I need a gift for a friend who travels.")
    parser.add_argument(
        "--base-url",
        help="the fleet's endpoint, e.g. http://127.0.0.1:8000 (default: an applied replica)",
    )
    parser.add_argument("--model", help="served model name (default: what the endpoint lists)")
    args = parser.parse_args()
    base_url, model = (args.base_url, args.model) if args.base_url else find_endpoint()
    recommend(base_url, model or served_model(base_url), args.question)


if __name__ == "__main__":
    main()
