"""The ring: all-gather on 2 and 4 cards, back-pressure, deadlock detection."""

from __future__ import annotations

import numpy as np
import pytest

from dfx.sim.functional import DeadlockError, IllegalInstructionError

D = 8


def allgather_program(card: int, n: int, s: int, chunk: int) -> str:
    """Card ``card`` owns vectors [card*s, (card+1)*s) of a buffer at v[0]; all-gather them as
    the compiler does (slice chunks of at most ``chunk`` vectors, sends and receives
    alternating), then store the whole buffer to DDR."""
    lines = [f"load dst=vrf[r0+{card * s}], src=hbm[r0+0], n={s * D}"]
    for step in range(n - 1):
        snd, rcv = (card - step) % n, (card - step - 1) % n
        for k in range(0, s, chunk):
            m = min(chunk, s - k)
            lines.append(f"send v=v[r0+{snd * s + k}], n={m}")
            lines.append(f"recv v=v[r0+{rcv * s + k}], n={m}")
    lines += [f"store dst=ddr[r0+0], src=vrf[r0+0], n={n * s * D}", "halt"]
    return "\n".join(lines)


@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("s, chunk", [(3, 3), (12, 8)])
def test_allgather(sim, rng, n, s, chunk) -> None:
    assert sim.core.buffers.router_fifo_vectors == 8
    slices = [sim.rand16(rng, (s, D)) for _ in range(n)]
    app = sim.run([allgather_program(c, n, s, chunk) for c in range(n)],
                  [[("hbm", 0, slices[c])] for c in range(n)])
    want = np.concatenate(slices).view(np.uint16)
    for c in range(n):
        got = app.read_f16(c, "ddr", 0, n * s * D).reshape(n * s, D)
        assert (got.view(np.uint16) == want).all()
    st = app.stats()
    assert [lk["vectors"] for lk in st["links"]] == [(n - 1) * s] * n
    assert all(lk["in_flight"] == 0 and lk["peak"] <= 8 for lk in st["links"])
    for card in st["cards"]:
        assert card["router"] == {"sent": (n - 1) * s, "received": (n - 1) * s}


def test_send_larger_than_the_fifo_streams(sim, rng) -> None:
    """A send of more vectors than the FIFO holds completes while the receiver drains it."""
    data = sim.rand16(rng, (20, D))
    app = sim.run([
        f"load dst=vrf[r0+0], src=hbm[r0+0], n={20 * D}\nsend v=v[r0+0], n=20\nhalt",
        f"recv v=v[r0+0], n=5\nrecv v=v[r0+5], n=15\n"
        f"store dst=ddr[r0+0], src=vrf[r0+0], n={20 * D}\nhalt",
    ], [[("hbm", 0, data)], []])
    assert (app.read_f16(1, "ddr", 0, 20 * D).view(np.uint16) == data.reshape(-1).view(
        np.uint16)).all()


def test_unchunked_sends_deadlock(sim, rng) -> None:
    """Every card sending 12 vectors before receiving fills every 8-vector FIFO: deadlock."""
    progs = [f"load dst=vrf[r0+0], src=hbm[r0+0], n={12 * D}\nsend v=v[r0+0], n=12\n"
             f"recv v=v[r0+12], n=12\nhalt" for _ in range(2)]
    with pytest.raises(DeadlockError) as e:
        sim.run(progs, [[("hbm", 0, np.zeros((12, D), np.float16))]] * 2)
    msg = str(e.value)
    assert "\n" not in msg
    assert "card 0, pc 1 (test): send v=v[r0+0], n=12: waits for room in card 1's receive " \
           "FIFO (8/8 vectors full; 8 of 12 sent)" in msg
    assert "card 1, pc 1 (test): send v=v[r0+0], n=12: waits for room in card 0's" in msg


def test_both_receive_first_deadlock(sim) -> None:
    progs = ["recv v=v[r0+0], n=2\nsend v=v[r0+0], n=2\nhalt"] * 2
    with pytest.raises(DeadlockError) as e:
        sim.run(progs, debug=[[(0, "layer / allgather")]] * 2)
    assert str(e.value) == (
        "deadlock: no card can make progress: "
        "card 0, pc 0 (layer / allgather): recv v=v[r0+0], n=2: waits for 2 more vectors from "
        "card 1 (its FIFO is empty; 0 of 2 received); "
        "card 1, pc 0 (layer / allgather): recv v=v[r0+0], n=2: waits for 2 more vectors from "
        "card 0 (its FIFO is empty; 0 of 2 received)")


def test_waiting_on_a_halted_card(sim) -> None:
    with pytest.raises(DeadlockError, match=r"card 0 has halted; card 1, pc 1 \(test\): recv "
                                            r"v=v\[r0\+0\], n=2: waits for 2 more vectors"):
        sim.run(["halt", "nop\nrecv v=v[r0+0], n=2\nhalt"])


def test_single_card_has_no_ring(sim) -> None:
    with pytest.raises(IllegalInstructionError, match="send needs the ring, but this appliance "
                                                      "has only 1 card"):
        sim.run("send v=v[r0+0], n=1\nhalt")
    with pytest.raises(IllegalInstructionError, match="recv needs the ring"):
        sim.run("recv v=v[r0+0], n=1\nhalt")


def test_send_of_unwritten_vectors(sim) -> None:
    from dfx.sim.functional import UninitializedReadError

    with pytest.raises(UninitializedReadError, match=r"card 0, pc 0 \(test\): send v=v\[r0\+3\], "
                                                     r"n=2: VRF read of v\[3..5\)"):
        sim.run(["send v=v[r0+3], n=2\nhalt", "recv v=v[r0+0], n=2\nhalt"])
