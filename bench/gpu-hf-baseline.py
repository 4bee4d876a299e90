"""HF transformers baseline for bench/gpu-bench.ts, on the same card.

Random f16 weights of TinyLlama-1.1B's shape (as `gpu-bench.ts --random tinyllama`),
sdpa attention, batch 1: prefill tok/s for one --prompt-token prompt, decode tok/s
for --new greedy tokens through `generate` (static or dynamic cache), and the peak
memory torch allocated. Needs a CUDA machine with torch and transformers:

    python3 bench/gpu-hf-baseline.py --cache static
    python3 bench/gpu-hf-baseline.py --cache dynamic

Decode time = generate(prompt, new tokens) − generate(prompt, 1 token), so the
prefill and the first token are not counted as decode.
"""
import argparse
import platform
import sys
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM


def timed(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def copy_bandwidth_gbs(nbytes: int = 256 * 2**20, reps: int = 8) -> float:
    """A device-to-device copy, counted as bytes read + bytes written (as bench/gpu-copy-bandwidth.ts)."""
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch
    _, s = timed(lambda: [dst.copy_(src) for _ in range(reps)])
    return 2 * nbytes * reps / s / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--cache", choices=["static", "dynamic"], default="static")
    args = ap.parse_args()

    config = LlamaConfig(
        vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
        num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(device="cuda", dtype=torch.float16).eval()
    ids = torch.randint(3, config.vocab_size, (1, args.prompt), device="cuda")
    gen = dict(do_sample=False, cache_implementation=args.cache, pad_token_id=0, eos_token_id=None)

    with torch.inference_mode():
        model.generate(ids[:, :16], max_new_tokens=4, min_new_tokens=4, **gen)  # warm-up
        _, prefill_s = timed(lambda: model(ids, logits_to_keep=1))
        _, one_s = timed(lambda: model.generate(ids, max_new_tokens=1, min_new_tokens=1, **gen))
        torch.cuda.reset_peak_memory_stats()
        out, all_s = timed(lambda: model.generate(ids, max_new_tokens=args.new + 1, min_new_tokens=args.new + 1, **gen))
    assert out.shape[1] == args.prompt + args.new + 1
    decode_s = all_s - one_s
    print(f"command: python3 {' '.join(sys.argv)}")
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"device:  {torch.cuda.get_device_name()}")
    print()
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| model | TinyLlama-1.1B shape, random f16, sdpa, {args.cache} cache |")
    print(f"| prefill {args.prompt} tokens | {args.prompt / prefill_s:,.1f} tok/s ({prefill_s * 1000:,.1f} ms) |")
    print(f"| decode {args.new} tokens | {args.new / decode_s:,.1f} tok/s ({decode_s * 1000 / args.new:,.2f} ms/token) |")
    print(f"| torch peak allocated | {torch.cuda.max_memory_allocated() / 2**20:,.1f} MiB |")
    print(f"| copy bandwidth | {copy_bandwidth_gbs():,.1f} GB/s device-to-device (256 MiB, read + write bytes) |")


if __name__ == "__main__":
    main()
