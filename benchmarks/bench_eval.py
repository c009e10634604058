"""Evaluation on cached embeddings: modalab's linear probe vs scikit-learn; retrieval memory.

(1) The same standardised features and penalty go to modalab's L-BFGS probe
(`fit_logistic_regression`) and to scikit-learn's `LogisticRegression(lbfgs)`; time ratio and
accuracy difference are printed. (2) Chunked Recall@K for N = 50,000 pairs: peak memory of
the computation (measured in a child process) vs the size of the full N x N matrix. Run:

    python benchmarks/bench_eval.py [--n 50000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp

import torch
from sklearn.linear_model import LogisticRegression

from _common import peak_rss_mib, timeit
from modalab.evaluation import fit_logistic_regression, retrieval_recall


def _retrieval_peak(n: int, d: int, chunk: int, queue) -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, d, generator=g)
    b = a + 1.5 * torch.randn(n, d, generator=g)
    base = peak_rss_mib()
    recall = retrieval_recall(a, b, ks=(1, 5, 10), chunk_size=chunk)
    queue.put((base, peak_rss_mib(), recall))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50_000)
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    n, d, c = 6000, 128, 10
    centres = torch.randn(c, d, generator=g) * 0.4
    y = torch.randint(c, (2 * n,), generator=g)
    x = centres[y] + torch.randn(2 * n, d, generator=g)
    x = (x - x[:n].mean(0)) / x[:n].std(0)
    l2 = 1e-3
    w, b = fit_logistic_regression(x[:n], y[:n], c, l2)
    acc_ours = float(((x[n:] @ w.t() + b).argmax(1) == y[n:]).float().mean())
    sk = LogisticRegression(C=1 / (l2 * n), max_iter=1000).fit(x[:n].numpy(), y[:n].numpy())
    acc_sk = sk.score(x[n:].numpy(), y[n:].numpy())
    t_ours = timeit(lambda: fit_logistic_regression(x[:n], y[:n], c, l2), repeats=3)
    t_sk = timeit(
        lambda: LogisticRegression(C=1 / (l2 * n), max_iter=1000).fit(x[:n].numpy(), y[:n].numpy()),
        repeats=3,
    )
    print(f"linear probe, {n} x {d} features, {c} classes, l2={l2}:")
    print(f"  modalab L-BFGS (torch): {t_ours:.2f}s, test accuracy {acc_ours:.4f}")
    print(f"  scikit-learn lbfgs    : {t_sk:.2f}s, test accuracy {acc_sk:.4f}")
    print(
        f"  time ratio sklearn/modalab: {t_sk / t_ours:.2f}, accuracy difference "
        f"{acc_ours - acc_sk:+.4f}"
    )

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_retrieval_peak, args=(args.n, 64, 1024, queue))
    proc.start()
    base, peak, recall = queue.get()
    proc.join()
    full = args.n * args.n * 4 / 2**20
    print(
        f"retrieval Recall@K, N={args.n}, D=64, chunk=1024: R@1={recall[1]:.3f} "
        f"R@10={recall[10]:.3f}"
    )
    print(
        f"  peak memory of the computation: {peak - base:.0f} MiB (process peak {peak:.0f} MiB)"
        f"; a full N x N float32 matrix would be {full:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
