#!/usr/bin/env python3
"""TRL's DPO on the preference task (datasets/preference/), measured on this CPU: the baseline that
`npm run bench -- dpo` (bench/dpo-bench.ts) prints beside our numbers.

TRL 1.13's DPOTrainer with PEFT (policy = the default model + LoRA, reference = the same model with the
adapter disabled), LoRA r 8 / alpha 16 / no dropout, beta 0.1, sigmoid loss, batch 8, 3 epochs, AdamW with
linear decay and no warmup, seed 0 (each of these a flag; --loss sigmoid,sft --loss-weights 1,1 is TRL's RPO). Then the task's sampling protocol (8 continuations per test prompt,
temperature 1.0, top-k 0, top-p 1.0, 48 new tokens, torch.manual_seed(1000 + i) for prompt i) for the base
model and the tuned one, measured with scripts/fixtures/preference_metrics.py (the twin of
lib/peft/preference-eval.ts).

Runs from a venv outside the repository (torch CPU, transformers, peft, trl from the local index):
    /root/refvenv/bin/python bench/trl-dpo-baseline.py --targets all-linear --lr 2e-3
    /root/refvenv/bin/python bench/trl-dpo-baseline.py --targets q_proj,v_proj --lr 5e-4
Prints one JSON line per configuration (share, distinct-bigram ratio, …, s/step) and a table row.
s/step is wall time; cpu_s_per_step is the process's CPU time (all threads) per step, which a shared,
busy machine inflates less (compare it with our bench's CPU s/step).
"""
import argparse
import json
import os
import resource
import sys
import time

# On a shared, busy machine OpenMP's spinning workers burn CPU while they wait for a core (seen here:
# 5 CPU-minutes for 20 s of sampling); passive waiting keeps torch's CPU time honest.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch
import transformers
import peft
import trl
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts", "fixtures"))
from preference_metrics import preference_metrics  # noqa: E402

MODEL = os.path.join(ROOT, "models", "tiny-stories")
DATA = os.path.join(ROOT, "datasets", "preference")


def read_jsonl(path):
    with open(path, encoding="utf8") as f:
        return [json.loads(line) for line in f if line.strip()]


def sample(model, tok, prompts, per_prompt=8, new_tokens=48, seed=1000):
    """The task's protocol: ancestral sampling (temperature 1, no top-k/top-p), seeded per prompt."""
    model.eval()
    texts = []
    with torch.no_grad():
        for i, p in enumerate(prompts):
            ids = tok(p, return_tensors="pt").input_ids
            torch.manual_seed(seed + i)
            out = model.generate(ids, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=new_tokens,
                                 num_return_sequences=per_prompt, pad_token_id=tok.eos_token_id)
            texts += [tok.decode(o[ids.shape[1]:], skip_special_tokens=True) for o in out]
    return texts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", default="all-linear", help='"all-linear" or a comma list such as q_proj,v_proj')
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--loss", default="sigmoid", help='loss_type, a comma list such as sigmoid,sft (RPO)')
    ap.add_argument("--loss-weights", default=None, help="loss_weights, a comma list, one per loss type")
    ap.add_argument("--seed", type=int, default=0, help="the trainer's seed (LoRA init, shuffling)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--skip-base", action="store_true", help="do not sample the base model")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    tok = AutoTokenizer.from_pretrained(MODEL)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token  # TRL pads with it; padding never reaches the loss
    # The checkpoint is float16; train in float32 on the CPU, as our CLI does.
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    prompts = [r["prompt"] for r in read_jsonl(os.path.join(DATA, "test-prompts.jsonl"))]
    t0 = time.perf_counter()
    base = None if args.skip_base else preference_metrics(sample(model, tok, prompts))
    print(f"base sampled in {time.perf_counter() - t0:.0f} s: {base}", file=sys.stderr, flush=True)

    train = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in read_jsonl(os.path.join(DATA, "train.jsonl"))])
    targets = args.targets if args.targets == "all-linear" else args.targets.split(",")
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets, task_type="CAUSAL_LM")
    cfg = DPOConfig(
        output_dir="/tmp/trl-dpo-baseline", beta=args.beta, loss_type=args.loss.split(","),
        loss_weights=[float(w) for w in args.loss_weights.split(",")] if args.loss_weights else None, learning_rate=args.lr,
        per_device_train_batch_size=args.batch, num_train_epochs=args.epochs, lr_scheduler_type="linear", warmup_steps=0,
        logging_steps=10, save_strategy="no", report_to="none", seed=args.seed, use_cpu=True, bf16=False, fp16=False,
        gradient_checkpointing=False, dataloader_num_workers=0,
    )
    trainer = DPOTrainer(model=model, args=cfg, train_dataset=train, processing_class=tok, peft_config=lora)
    t0, c0 = time.perf_counter(), time.process_time()
    result = trainer.train()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    steps = result.global_step
    last = [h for h in trainer.state.log_history if "loss" in h][-1]

    tuned = preference_metrics(sample(trainer.model, tok, prompts))
    row = {
        "trl": trl.__version__, "peft": peft.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "targets": args.targets, "lr": args.lr, "beta": args.beta, "loss": args.loss, "loss_weights": args.loss_weights, "seed": args.seed, "batch": args.batch,
        "epochs": args.epochs, "steps": steps, "train_s": round(seconds, 1), "s_per_step": round(seconds / steps, 3),
        "cpu_s_per_step": round(cpu / steps, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "load_avg": [round(x, 1) for x in os.getloadavg()],
        "last_log": {k: last[k] for k in last if k.startswith(("loss", "rewards/", "logps/"))},
        "base": base, "tuned": tuned,
    }
    print(json.dumps(row))
    b = base or {}
    print(f"| TRL {trl.__version__} {args.targets} lr {args.lr} beta {args.beta} loss {args.loss} {args.loss_weights or ''} seed {args.seed} | {steps} | {seconds:.0f} s | {seconds / steps:.2f} | "
          f"{b.get('share', float('nan')):.3f} → {tuned['share']:.3f} | {b.get('distinctBigrams', float('nan')):.3f} → {tuned['distinctBigrams']:.3f} | "
          f"{tuned['nonPrintable']} | {b.get('meanWords', float('nan')):.1f} → {tuned['meanWords']:.1f} |")


if __name__ == "__main__":
    main()
