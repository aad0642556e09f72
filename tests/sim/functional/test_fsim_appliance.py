"""The appliance: generation through the binary's symbols, input validation, reset, progress;
and (when the compiler is importable) a compiled GPT-2 run against a float64 reference."""

from __future__ import annotations

import numpy as np
import pytest

from dfx.isa.errors import DfxError
from dfx.sim.functional import Appliance, HostError, generate

D = 8
VOCAB = 6
CAPACITY = 16
FIELDS = ["prompt_len", "gen_len", "write_logits", "card_id", "n_cards"]
SYMBOLS = {
    "cfg": {"space": "ddr", "addr": 0, "bytes": 20, "fields": FIELDS},
    "tokens": {"space": "ddr", "addr": 0x40, "bytes": 4 * CAPACITY, "capacity": CAPACITY},
    "logits": {"space": "ddr", "addr": 0x100, "bytes": 2 * D * CAPACITY, "row_elements": D,
               "vocab": VOCAB},
}
# A toy "model" with the compiled programs' protocol (docs/compiler.md): the logits at position
# t are row tokens[t] of a table; the next token is their argmax.
TOY = """
    lw rd=r1, mem=ddr[r0+0]
    lw rd=r2, mem=ddr[r0+4]
    lw rd=r6, mem=ddr[r0+8]
    add rd=r3, rs1=r1, rs2=r2
    addi rd=r3, rs1=r3, imm=-1
    li rd=r4, imm=0
token:
    shli rd=r11, rs1=r4, imm=2
    lw rd=r5, mem=ddr[r11+0x40]
    muli rd=r11, rs1=r5, imm=16
    load dst=vrf[r0+0], src=ddr[r11+0x400], n=8
    vargmax rd=r5, a=v[r0+0], n=6
    beq rs1=r6, rs2=r0, target=nolog
    muli rd=r11, rs1=r4, imm=16
    store dst=ddr[r11+0x100], src=vrf[r0+0], n=8
nolog:
    addi rd=r4, rs1=r4, imm=1
    blt rs1=r4, rs2=r1, target=prompt
    shli rd=r11, rs1=r4, imm=2
    sw rs1=r5, mem=ddr[r11+0x40]
prompt:
    blt rs1=r4, rs2=r3, target=token
    halt
"""


def _table(rng) -> np.ndarray:
    t = rng.standard_normal((VOCAB, D)).astype(np.float16)
    for tok in range(VOCAB):
        t[tok, (3 * tok + 1) % VOCAB] = 10.0
    return t


def _toy(sim, rng, cards=1, model=None):
    table = _table(rng)
    b = sim.binary([TOY] * cards, [[("ddr", 0x400, table)]] * cards, symbols=SYMBOLS,
                   model=model if model is not None else {"weights": True})
    return b, table


def _expected(table, prompt, g):
    toks = list(prompt)
    for _ in range(g):
        toks.append((3 * toks[-1] + 1) % VOCAB)
    logits = np.stack([table[t, :VOCAB] for t in toks[:-1]])
    return toks, logits


@pytest.mark.parametrize("cards", [1, 2])
def test_generate_protocol(sim, rng, cards) -> None:
    b, table = _toy(sim, rng, cards)
    seen = []
    toks, logits = generate(b, [2, 5, 1], 6, write_logits=True,
                            progress=lambda done, total: seen.append((done, total)))
    want_toks, want_logits = _expected(table, [2, 5, 1], 6)
    assert toks == want_toks
    assert logits.shape == (8, VOCAB) and logits.dtype == np.float16
    assert (logits.view(np.uint16) == want_logits.view(np.uint16)).all()
    assert seen == [(k, 6) for k in range(1, 7)]


def test_cfg_goes_to_every_card_and_reset(sim, rng) -> None:
    b, table = _toy(sim, rng, cards=2)
    app = Appliance(b)
    first, lg = app.generate([4], 3)
    assert lg is None
    assert app.read_u32(1, "ddr", 0, 5).tolist() == [1, 3, 0, 1, 2]
    assert app.read_u32(0, "ddr", 0, 5).tolist() == [1, 3, 0, 0, 2]
    again, _ = app.generate([4], 3)  # a second request resets the appliance
    assert first == again == _expected(table, [4], 3)[0]
    other, _ = app.generate([0, 1], 2)
    assert other == _expected(table, [0, 1], 2)[0]


@pytest.mark.parametrize("prompt, g, msg", [
    ([], 3, "empty prompt: give at least one token"),
    ([1, 6], 3, r"token id 6 at prompt position 1 is outside the vocabulary \(0..5\)"),
    ([1, -1], 3, "token id -1 at prompt position 1 is outside the vocabulary"),
    ([1] * 10, 7, r"prompt of 10 tokens \+ 7 new tokens = 17 exceeds the model's context of 16"),
    ([1], 0, "max_new_tokens must be at least 1, got 0"),
])
def test_generate_validation(sim, rng, prompt, g, msg) -> None:
    b, _ = _toy(sim, rng)
    with pytest.raises(HostError, match=msg) as e:
        generate(b, prompt, g)
    assert "\n" not in str(e.value) and isinstance(e.value, DfxError)


def test_binary_without_weights_is_refused(sim, rng) -> None:
    b, _ = _toy(sim, rng, model={"weights": False})
    with pytest.raises(HostError, match="compiled without weights"):
        Appliance(b)


def test_binary_without_generation_symbols(sim) -> None:
    with pytest.raises(HostError, match="the binary has no 'cfg' symbol"):
        generate(sim.binary("halt"), [1], 1)


def test_run_progress_callback(sim) -> None:
    app = Appliance(sim.binary("li rd=r2, imm=50\ntop: addi rd=r1, rs1=r1, imm=1\n"
                               "blt rs1=r1, rs2=r2, target=top\nhalt"))
    app.slice_instructions = 7
    seen: list[int] = []
    assert app.run(progress=seen.append, progress_every=20) == 102
    assert seen[-1] == 102 and len(seen) >= 5 and seen == sorted(seen)
    assert app.halted


# ----------------------------------------------------------------- end to end (with compiler)


def _gpt2_reference(model, tokens: list[int]) -> np.ndarray:
    """Float64 GPT-2 forward (teacher-forced): logits [len(tokens), vocab]."""
    cfg = model.config
    w = lambda name: model[name].astype(np.float64)  # noqa: E731
    e, nh = cfg.n_embd, cfg.n_head
    hd = e // nh
    eps = cfg.layer_norm_epsilon

    def ln(x, g, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * g + b

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    t = len(tokens)
    x = w("wte.weight")[tokens] + w("wpe.weight")[:t]
    causal = np.triu(np.full((t, t), -np.inf), 1)
    for i in range(cfg.n_layer):
        p = f"h.{i}."
        h = ln(x, w(p + "ln_1.weight"), w(p + "ln_1.bias"))
        qkv = h @ w(p + "attn.c_attn.weight") + w(p + "attn.c_attn.bias")
        q, k, v = (qkv[:, j * e:(j + 1) * e].reshape(t, nh, hd).transpose(1, 0, 2)
                   for j in range(3))
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + causal
        s = np.exp(s - s.max(-1, keepdims=True))
        a = (s / s.sum(-1, keepdims=True)) @ v
        a = a.transpose(1, 0, 2).reshape(t, e)
        x = x + a @ w(p + "attn.c_proj.weight") + w(p + "attn.c_proj.bias")
        h = ln(x, w(p + "ln_2.weight"), w(p + "ln_2.bias"))
        f = gelu(h @ w(p + "mlp.c_fc.weight") + w(p + "mlp.c_fc.bias"))
        x = x + f @ w(p + "mlp.c_proj.weight") + w(p + "mlp.c_proj.bias")
    x = ln(x, w("ln_f.weight"), w("ln_f.bias"))
    return x @ model.lm_head_weight().astype(np.float64).T


@pytest.fixture(scope="module")
def compiled_tiny():
    driver = pytest.importorskip("dfx.compiler.driver")
    presets = pytest.importorskip("dfx.compiler.frontend.presets")
    try:
        bins = {n: driver.compile_model("gpt2-tiny", cards=n).binary for n in (1, 2, 4)}
        model = presets.load_model("gpt2-tiny")
    except DfxError as e:  # pragma: no cover - the compiler is still moving
        pytest.skip(f"compiler unavailable: {e}")
    return bins, model


def test_compiled_gpt2_tiny_cards_agree_and_match_reference(compiled_tiny) -> None:
    bins, model = compiled_tiny
    prompt = [464, 2068, 7586, 21831]
    results = {n: generate(b, prompt, 4, write_logits=True) for n, b in bins.items()}
    toks1, lg1 = results[1]
    for toks, lg in results.values():  # bit-identical on 1, 2 and 4 cards
        assert toks == toks1
        assert (lg.view(np.uint16) == lg1.view(np.uint16)).all()
    ref = _gpt2_reference(model, toks1[:-1])
    got = lg1.astype(np.float64)
    assert np.isfinite(got).all()
    err = np.abs(got - ref).max() / np.abs(ref).max()
    assert err < 0.01, err  # measured: about 5e-4
    # the generated tokens are the argmax of the simulated logits at each position
    p = len(prompt)
    assert toks1[p:] == [int(np.argmax(lg1[t])) for t in range(p - 1, len(toks1) - 1)]


def test_golden_matvec_mode_is_identical(compiled_tiny) -> None:
    bins, _ = compiled_tiny
    fast = generate(bins[2], [1, 2, 3], 3, write_logits=True)
    gold = generate(bins[2], [1, 2, 3], 3, write_logits=True, golden_matvec=True)
    assert fast[0] == gold[0]
    assert (fast[1].view(np.uint16) == gold[1].view(np.uint16)).all()


def test_reset_keeps_prepared_weights(compiled_tiny) -> None:
    bins, model = compiled_tiny
    app = Appliance(bins[2])
    first = app.generate([1, 2, 3], 3, write_logits=True)

    def cached():
        return {k for k, e in app.cache._entries.items() if e.prepared is not None}

    kv = [c.symbols["kv_cache"]["addr"] for c in bins[2].cards]
    weights = {k for k in cached() if k[1] < kv[k[0][0]]}
    assert len(weights) > 2 * model.config.n_layer
    app.reset()
    assert cached() == weights  # the weights stay prepared, the KV cache entries go
    second = app.generate([1, 2, 3], 3, write_logits=True)
    assert first[0] == second[0]
    assert (first[1].view(np.uint16) == second[1].view(np.uint16)).all()


def test_appliance_from_a_file(sim, rng, tmp_path) -> None:
    from dfx.isa.container import write_binary

    b, table = _toy(sim, rng)
    path = tmp_path / "toy.dfx"
    write_binary(path, b)
    toks, _ = generate(path, [3], 2)
    assert toks == _expected(table, [3], 2)[0]
