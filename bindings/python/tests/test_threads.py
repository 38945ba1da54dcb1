"""Threads: one Adapter shared, one Session per thread; calls release the GIL."""

from __future__ import annotations

import threading
import time

import numpy as np

import rrra


def test_four_threads_give_identical_results(make):
    made = make(d=32, h=24, seed=1, activation="gelu", similarity="cosine")
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 40, size=16)
    queries = rng.normal(size=(16, 32)).astype(np.float32)
    cands = rng.normal(size=(int(counts.sum()), 32)).astype(np.float32)
    with rrra.Session(made.adapter) as session:
        want_rr = session.rerank_batch(queries, cands, counts)
        want_rs = session.resample_batch(queries, cands, counts, samples_per_query=5, seed=3)
    results, errors = {}, []

    def work(t):
        try:
            with rrra.Session(made.adapter) as session:
                for _ in range(25):
                    rr = session.rerank_batch(queries, cands, counts)
                    rs = session.resample_batch(queries, cands, counts, samples_per_query=5, seed=3)
                    np.testing.assert_array_equal(rr.log_s_rr, want_rr.log_s_rr)
                    np.testing.assert_array_equal(rr.order, want_rr.order)
                    np.testing.assert_array_equal(rs.log_s_rs, want_rs.log_s_rs)
                    np.testing.assert_array_equal(rs.samples, want_rs.samples)
                results[t] = True
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(results) == [0, 1, 2, 3]


def test_calls_release_the_gil(make):
    """While one thread is inside a long library call, another thread keeps running Python code."""
    made = make(d=64, h=64, seed=4)
    rng = np.random.default_rng(5)
    k = 8000
    q = rng.normal(size=64).astype(np.float32)
    c = rng.normal(size=(k, 64)).astype(np.float32)
    with rrra.Session(made.adapter, engine="reference") as session:
        session.rerank(q, c[:100])  # warm up
        calls = []

        def work():
            for _ in range(3):
                t0 = time.perf_counter()
                session.rerank(q, c)
                calls.append((t0, time.perf_counter()))

        ticks = []
        worker = threading.Thread(target=work)
        worker.start()
        while worker.is_alive():
            ticks.append(time.perf_counter())
            time.sleep(0.0005)
        worker.join()
    long_calls = [(a, b) for a, b in calls if b - a > 0.02]
    if not long_calls:
        import pytest

        pytest.skip("the calls were too fast on this machine to observe")
    a, b = max(long_calls, key=lambda ab: ab[1] - ab[0])
    # Ticks in the middle half of the call: impossible if the call held the GIL.
    lo, hi = a + (b - a) * 0.25, b - (b - a) * 0.25
    inside = [t for t in ticks if lo < t < hi]
    assert len(inside) >= 1, f"main thread made {len(inside)} steps during a {b - a:.3f}s library call"


def test_session_threads_do_not_change_results(make):
    made = make(d=16, h=12, seed=6, activation="silu")
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 30, size=33)
    queries = rng.normal(size=(33, 16)).astype(np.float32)
    cands = rng.normal(size=(int(counts.sum()), 16)).astype(np.float32)
    results = []
    for threads in (1, 3):
        with rrra.Session(made.adapter, threads=threads) as session:
            assert session.threads == threads
            rr = session.rerank_batch(queries, cands, counts)
            rs = session.resample_batch(queries, cands, counts, samples_per_query=4, seed=8)
            results.append((rr, rs))
    (a, b), (c, d) = results
    np.testing.assert_allclose(a.log_s_rr, c.log_s_rr, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b.log_s_rs, d.log_s_rs, rtol=1e-5, atol=1e-5)
    import pytest

    with pytest.raises(ValueError, match="threads"):
        rrra.Session(made.adapter, threads=0)
    with pytest.raises(ValueError, match="threads"):
        rrra.Session(made.adapter, threads=2**32 - 1)  # would abort the process inside the library


def test_a_forked_child_can_use_a_threaded_session(make):
    """A session's worker threads do not survive fork(); the child's calls run on its one thread."""
    import os

    import pytest

    if not hasattr(os, "fork"):
        pytest.skip("no fork() on this platform")
    made = make(d=48, h=96, seed=6)
    rng = np.random.default_rng(7)
    q = rng.normal(size=48).astype(np.float32)
    c = rng.normal(size=(300, 48)).astype(np.float32)
    with rrra.Session(made.adapter, threads=2) as session:
        want = session.rerank(q, c)  # the parent's workers have run
        pid = os.fork()
        if pid == 0:  # the child: exit status 0 only for identical results
            status = 2
            try:
                got = session.rerank(q, c)
                same = np.array_equal(got.log_s_rr, want.log_s_rr) and np.array_equal(got.order, want.order)
                status = 0 if same else 1
            finally:
                os._exit(status)
        deadline = time.monotonic() + 60
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung in a threaded session's call")
            time.sleep(0.01)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child status {status}"
        np.testing.assert_array_equal(session.rerank(q, c).log_s_rr, want.log_s_rr)
