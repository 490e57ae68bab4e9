from sparvar_ref import schedules as S


def test_square_1m():
    s = S.get_schedule(1.0, "1M")
    assert [h for _, h, _ in s] == [1, 2, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64]
    assert all(h == w and t == 1 for t, h, w in s)
    assert S.total_tokens(s) == 10521


def test_table_shape():
    keys = list(S.DYNAMIC_RESOLUTION_H_W)
    assert keys == [1.0, 1.25, 0.8, 1.333, 0.75, 1.5, 0.666, 1.75, 0.571, 2.0, 0.5, 2.5, 0.4, 3.0, 0.333]
    for r, e in S.DYNAMIC_RESOLUTION_H_W.items():
        assert [len(e[p]["scales"]) for p in ("0.06M", "0.25M", "0.60M", "1M")] == [7, 10, 12, 13]
        full = e["1M"]["scales"]
        for p in e:
            sc = e[p]["scales"]
            assert sc == full[: len(sc)]                       # every budget is a prefix of 1M
            assert abs(sc[-1][1] / sc[-1][2] - r) < 0.01
            assert e[p]["pixel"] == (sc[-1][1] * 16, sc[-1][2] * 16)
        assert [t for t, _, _ in full] == [1, 2, 3, 4, 5, 6, 7, 9, 11, 13, 15, 17, 21]


def test_known_values():
    D = S.DYNAMIC_RESOLUTION_H_W
    assert D[1.25]["1M"]["scales"][-1] == (21, 70, 56)
    assert D[0.8]["1M"]["scales"][-1] == (21, 56, 70)
    assert D[3.0]["1M"]["scales"][-1][1:] == (111, 37)
    assert D[0.333]["0.06M"]["scales"][-1][1:] == (9, 27)
    assert D[1.0]["0.25M"]["pixel"] == (512, 512)
    assert S.total_tokens(S.get_schedule(1.0, "0.06M")) == 521
    assert S.total_tokens(S.get_schedule(1.0, "0.25M")) == 1 + 4 + 16 + 36 + 64 + 144 + 256 + 400 + 576 + 1024
    assert S.nearest_template(1.3) == 1.333 and S.nearest_template(0.7) == 0.666


def test_no_schedule_collisions():
    seen = {}
    for r, e in S.DYNAMIC_RESOLUTION_H_W.items():
        for p, v in e.items():
            k = tuple((h, w) for _, h, w in v["scales"])
            assert k not in seen, (r, p, seen.get(k))
            seen[k] = (r, p)


def test_vae_schedule():
    s = S.get_schedule(1.0, "0.06M")
    assert S.vae_schedule(s, True)[-1] == (1, 32, 32) and S.vae_schedule(s, False)[-1] == (1, 16, 16)
