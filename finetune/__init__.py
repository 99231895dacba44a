"""LoRA fine-tuning (dataset builders, task mixing, peft training): see the finetune issue."""
