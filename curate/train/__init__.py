"""The QLoRA/LoRA trainer that consumes curated shards (`make train`); built in its own issue."""
