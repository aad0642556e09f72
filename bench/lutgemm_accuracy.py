#!/usr/bin/env python3
"""LUT-GEMM accuracy: a quantized GPT-2 against the FP16 one on the bit-exact functional
simulator, over many decoding steps with teacher forcing (Park et al., ICLR 2024; the
q x g sweep of their Fig. 7 / Table 5, here on a random model).

    .venv/bin/python bench/lutgemm_accuracy.py                      # gpt2-mini, 4 cards
    .venv/bin/python bench/lutgemm_accuracy.py --q 3 --g 64 --schemes bcq --steps 32

Method:

* Model: preset ``--model`` with ``spread="gpt2"`` weights (trained-like: Student-t 5
  matrices at GPT-2 small's typical std with per-tensor scales, logits spread ~3; see
  ``dfx.compiler.frontend.presets``), saved as an FP16 checkpoint and compiled from it, FP16
  and once per quantization spec (``compile_model(..., quant=spec)``; LM head in FP16).
* Reference: the FP16 binary generates greedily from a seeded random prompt; its logits at
  every position (prompt and generated) are the reference. A random model's greedy output
  soon repeats one token, so most positions are a random prompt by default (the
  number of distinct tokens of the teacher sequence is printed). Teacher forcing: each
  quantized binary is fed the FP16 model's tokens (prompt + FP16 generations) and its
  logits at the same positions are compared, so errors do not compound through different
  token choices.
* Caveat: a random network amplifies weight noise more than a trained one, and its
  next-token distribution is flatter (small top-1 margins), so top-1 agreement here is a
  pessimistic figure; the weight error and the ranking of the specs carry over best.
* Metrics per spec, over all positions: logit error ``|l_q - l_fp16|`` divided by the std of
  that position's FP16 logits (max over everything, and mean); top-1 agreement (arg-max of the
  quantized logits = the FP16 arg-max) separately over the random-prompt positions (diverse
  contexts) and the generated ones (a few repeated tokens: coarse); top-5 (quantized arg-max
  among the FP16 top 5) and the mean KL divergence of the next-token distributions; the
  relative RMS weight error of the quantized matrices after FP16 rounding of the scales,
  ``sqrt(sum |W_q - W|^2 / sum |W|^2)``; bits per weight ``q + 16 (q + 1) / g``; HBM bytes per
  card of the layer matrices (max over cards) and of all weights (with the FP16 LM head), from
  the memory plan.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dfx.host.sysinfo import loadavg as load
from dfx.host.sysinfo import machine

KINDS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
LAYER_REGIONS = ("wq", "wk", "wv", "wproj", "wfc", "wfc2")


def layer_bytes(comp) -> tuple[int, int]:
    """(layer-matrix HBM bytes, all weight bytes) of the busiest card."""
    n_layer = int(comp.binary.model["n_layer"])
    lay = max(sum(r.size for n, r in m.regions.items() if n in LAYER_REGIONS) * n_layer
              for m in comp.memory)
    return lay, max(comp.binary.model["weight_bytes"])


def weight_error(model, spec, slice_: int) -> float:
    """Relative RMS error of the quantized layer matrices (FP16 scales)."""
    from dfx.compiler.quant import quantize
    from dfx.isa.golden.lutgemm import dequantize

    num = den = 0.0
    for i in range(model.config.n_layer):
        for kind in KINDS:
            layer = f"h.{i}.{kind}"
            if not spec.quantizes(layer):
                continue
            w = model[f"{layer}.weight"].astype(np.float64)
            g = spec.group(w.shape[0], slice_, layer)
            d = dequantize(quantize(w, spec, g).to_fp16()) - w
            num += float((d * d).sum())
            den += float((w * w).sum())
    return (num / den) ** 0.5 if den else 0.0


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def compare(ref: np.ndarray, got: np.ndarray, prompt: int) -> dict[str, float]:
    """Logit error / std(FP16 row) (max, mean), top-1 agreement on the prompt positions and on
    the generated ones, share of positions whose quantized arg-max is in the FP16 top 5, and
    mean KL(p_fp16 || p_quant) in nats."""
    r, q = ref.astype(np.float64), got.astype(np.float64)
    rel = np.abs(q - r) / r.std(axis=1, keepdims=True)
    top1 = r.argmax(1) == q.argmax(1)
    in5 = (np.argsort(-r, axis=1)[:, :5] == q.argmax(1)[:, None]).any(axis=1)
    lr, lq = _log_softmax(r), _log_softmax(q)
    kl = (np.exp(lr) * (lr - lq)).sum(axis=1)
    gen = top1[prompt:] if len(top1) > prompt else np.ones(1)
    return {"max": float(rel.max()), "mean": float(rel.mean()),
            "top1_p": float(top1[:prompt].mean()), "top1_g": float(gen.mean()),
            "top5": float(in5.mean()), "kl": float(kl.mean())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gpt2-mini", help="preset (gpt2-mini)")
    ap.add_argument("--cards", type=int, default=4)
    ap.add_argument("--prompt", type=int, default=96, help="random prompt tokens (96)")
    ap.add_argument("--steps", type=int, default=160,
                    help="positions compared = prompt + generated - 1 (160)")
    ap.add_argument("--q", default="2,3,4")
    ap.add_argument("--g", default="32,64,128")
    ap.add_argument("--schemes", default="bcq,rtn")
    ap.add_argument("--exclude", default=None,
                    help="quant spec exclude= patterns (default: the spec's, lm_head)")
    ap.add_argument("--spread", default="gpt2", help="preset weight spread (gpt2 | init)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bias-std", type=float, default=0.02)
    args = ap.parse_args(argv)

    from dfx.compiler.driver import compile_model
    from dfx.compiler.frontend import preset_model, save_checkpoint
    from dfx.compiler.quant import QuantSpec
    from dfx.sim.functional import Appliance

    t_start = time.perf_counter()
    cmd = f"bench/lutgemm_accuracy.py {' '.join(argv if argv is not None else sys.argv[1:])}"
    print(f"# {cmd.rstrip()}")
    print(f"# {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; {machine()}")
    model = preset_model(args.model, seed=args.seed, spread=args.spread,
                         bias_std=args.bias_std)
    cfg = model.config
    if args.steps >= cfg.n_ctx or args.prompt > args.steps:
        ap.error(f"need prompt <= steps < n_ctx = {cfg.n_ctx}")
    new = args.steps - args.prompt + 1
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_checkpoint(model, Path(tmp) / "ckpt", dtype="float16")
        t0 = time.perf_counter()
        fp = compile_model(str(ckpt), cards=args.cards)
        prompt = np.random.default_rng(args.seed).integers(0, cfg.vocab_size,
                                                           args.prompt).tolist()
        seq, ref = Appliance(fp.binary).generate(prompt, new, write_logits=True)
        ref = np.asarray(ref)
        forced = seq[:args.steps]
        _, again = Appliance(fp.binary).generate(forced, 1, write_logits=True)
        assert np.array_equal(np.asarray(again), ref), "teacher forcing changed FP16 logits"
        t_fp = time.perf_counter() - t0
        slice_ = fp.binary.core.lutgemm.slice
        lay16, all16 = layer_bytes(fp)
        print(f"# model: {args.model} ({cfg.n_layer} layers, n_embd {cfg.n_embd}, "
              f"{cfg.n_head} heads, vocab {cfg.vocab_size}), seed {args.seed}, "
              f"spread {args.spread}, bias_std {args.bias_std:g}; {args.cards} cards of "
              f"{fp.binary.core.name} (lane word {slice_} inputs); LM head FP16")
        print(f"# {args.steps} positions compared (prompt {args.prompt} random ids + "
              f"{new - 1} FP16 greedy tokens, teacher-forced; {len(set(forced))} distinct "
              f"tokens, {len(set(seq[args.prompt:]))} among the generated); FP16 logit std per "
              "position: "
              f"mean {ref.astype(np.float64).std(axis=1).mean():.3f}; FP16 compile + 2 runs "
              f"{t_fp:.1f} s")
        rows = [("fp16", "-", "-", 16.0, lay16, all16, 0.0, compare(ref, ref, args.prompt),
                 0.0, 0.0)]
        for scheme in args.schemes.split(","):
            for q in (int(v) for v in args.q.split(",")):
                for g in (int(v) for v in args.g.split(",")):
                    spec = QuantSpec.parse(f"{scheme}:q={q},g={g}" + (
                        f",exclude={args.exclude}" if args.exclude else ""))
                    t0 = time.perf_counter()
                    comp = compile_model(str(ckpt), cards=args.cards, quant=spec)
                    t_c = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    _, got = Appliance(comp.binary).generate(forced, 1, write_logits=True)
                    t_r = time.perf_counter() - t0
                    m = compare(ref, np.asarray(got), args.prompt)
                    werr = weight_error(model, spec, slice_)
                    lay, allb = layer_bytes(comp)
                    rows.append((scheme, str(q), str(g), q + 16 * (q + 1) / g, lay, allb,
                                 werr, m, t_c, t_r))
                    print(f"#   {spec.text()}: top-1 {m['top1_p']:.3f} / {m['top1_g']:.3f}, KL "
                          f"{m['kl']:.4f}, compile {t_c:.1f} s, run {t_r:.1f} s; load {load()}",
                          flush=True)
    print()
    print("| scheme | q | g | bits/weight | layer weights/card | all weights/card | "
          "weight rel. RMS err | max logit err / std | mean logit err / std | "
          "top-1 agree: prompt / generated | in FP16 top-5 | KL nats | compile s | sim s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (s, q, g, bits, lay, allb, werr, m, t_c, t_r) in rows:
        print(f"| {s} | {q} | {g} | {bits:.2f} | {lay / 1e6:.3f} MB ({lay16 / lay:.2f}x) | "
              f"{allb / 1e6:.2f} MB | {werr:.4f} | {m['max']:.3f} | {m['mean']:.4f} | "
              f"{m['top1_p']:.3f} / {m['top1_g']:.3f} | {m['top5']:.3f} | {m['kl']:.4f} | "
              f"{t_c:.1f} | {t_r:.1f} |")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s; load {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
