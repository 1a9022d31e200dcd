"""Training: the runner process that takes queued jobs, and the trainer (SFT and DPO over LoRA, packed batches, the
step math)."""
