import math

import torch

from sparvar_ref import rope, schedules


def test_positions_normalised_to_last_scale():
    p = rope.scale_positions(6, 6, 64, 64).reshape(6, 6, 2)
    assert p[:, 0, 0].tolist() == [0, 11, 21, 32, 43, 53]
    assert p[0, :, 1].tolist() == [0, 11, 21, 32, 43, 53]
    assert rope.scale_positions(64, 64, 64, 64)[-1].tolist() == [63, 63]


def test_rope_matches_direct_formula():
    hd = 64
    sched = schedules.get_schedule(1.0, "0.06M")       # normalised to the 1M last grid 64 x 64
    tab = rope.rope_table(sched, hd)
    L = schedules.total_tokens(sched)
    assert tab.shape == (2, L, hd // 2)
    torch.manual_seed(0)
    x = torch.randn(1, 2, L, hd)
    y = rope.apply_rope(x, tab)
    # direct: token n of scale (h, w) at row r, col c -> (R, Cc) = (round(r*64/h), round(c*64/w));
    # pair i (elements 2i, 2i+1) rotated by R * 10000^(-2i/32) for i < 16, Cc * 10000^(-2(i-16)/32) after.
    n = 0
    for _, h, w in sched:
        for r in range(h):
            for c in range(w):
                R, Cc = round(r * 64 / h), round(c * 64 / w)
                for i in range(hd // 2):
                    j = i if i < hd // 4 else i - hd // 4
                    pos = R if i < hd // 4 else Cc
                    a = pos * 10000 ** (-(2 * j) / (hd // 2))
                    z = complex(float(x[0, 1, n, 2 * i]), float(x[0, 1, n, 2 * i + 1])) * complex(math.cos(a), math.sin(a))
                    assert abs(z.real - float(y[0, 1, n, 2 * i])) < 1e-4
                    assert abs(z.imag - float(y[0, 1, n, 2 * i + 1])) < 1e-4
                n += 1


def test_budget_uses_1m_table_prefix():
    hd = 128
    full = rope.rope_table(schedules.get_schedule(1.25, "1M"), hd)
    small = rope.rope_table(schedules.get_schedule(1.25, "0.25M"), hd)
    assert torch.equal(full[:, : small.shape[1]], small)


def test_custom_schedule_falls_back_to_own_last_grid():
    tab = rope.rope_table([(1, 1, 1), (1, 2, 2), (1, 4, 4)], 64)
    assert tab.shape == (2, 21, 32)
    f = rope.inv_freqs(64)
    assert torch.allclose(tab[0, -1], torch.cos(torch.cat([3 * f, 3 * f])))
