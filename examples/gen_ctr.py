#!/usr/bin/env python3
"""Generate a CTR-like sparse binary classification dataset in LibSVM format.

What it models
--------------
Click-through-rate data: every example is a handful of hashed categorical
features (one-hot, value 1) drawn from a huge feature space in which a few
features are very common and most are rare, with a label that is 1 for a
"click" about 10-25% of the time. Concretely:

* Feature popularity follows a power law. A feature's rank r in 1..D is
  drawn with P(r) ~ r^-s (a continuous inverse-CDF approximation of Zipf's
  law, exact enough and O(1) per draw); ranks are then scattered over the id
  space by a fixed bijection id = (r-1)*A + B mod D, so popular ids are not
  all small numbers, as with hashed features.
* Each row has about k distinct active features: k_row = max(1, round(x))
  with x ~ N(mean k, variance k) (a Poisson-like spread), drawn from that
  law without repetition.
* A planted logistic model: the weight of feature j is w_j ~ N(0,
  weight_std^2), a pure function of (seed, j) (hashed, so it does not depend
  on row counts or draw order). The bias b is solved by bisection on a pilot
  sample so that the mean click probability equals --positive-rate. A row's
  label is 1 with probability sigmoid(b + sum of its weights).

Because the generating model is known, the script also reports the oracle
log loss on the test set (what the true model scores): a trained logistic
regression can be compared against it.

Output: <out>/<prefix>.train.svm and <out>/<prefix>.test.svm, lines
"label id:1 id:1 ..." with labels 0/1 and one-based ids ascending (the
default of distopt's LibSVM reader), plus <prefix>.meta.json with the flags
and statistics. Everything is deterministic in --seed. Standard library only.

Flags (defaults generate in seconds):
  --train-rows N      training rows (200000)
  --test-rows N       test rows (50000)
  --dim D             size of the feature id space (1000000)
  --active K          mean active features per row (20)
  --zipf S            power-law exponent s of feature popularity (1.1)
  --weight-std SIGMA  standard deviation of the planted weights (0.25)
  --positive-rate P   target fraction of label-1 rows, in (0, 1) (0.15)
  --seed N            seed of everything (1)
  --out DIR           output directory (.)
  --prefix NAME       file name prefix (ctr)

Example:
  python3 examples/gen_ctr.py --out /tmp/distopt-ctr
  distopt train examples/sparse_logreg.toml   # or fm_ctr.toml; both read /tmp/distopt-ctr/ctr.*.svm
"""

import argparse
import json
import math
import os
import random
import sys
import time

MASK64 = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


class PlantedModel:
    """Weights w_j ~ N(0, std^2) as a pure function of (seed, j), memoized."""

    def __init__(self, seed, std):
        self.key = splitmix64(seed * 0x5851F42D4C957F2D & MASK64)
        self.std = std
        self.cache = {}

    def weight(self, j):
        w = self.cache.get(j)
        if w is None:
            h1 = splitmix64(self.key ^ j)
            h2 = splitmix64(h1)
            u1 = ((h1 >> 11) + 1) * (1.0 / 9007199254740993.0)  # in (0, 1]
            u2 = (h2 >> 11) * (1.0 / 9007199254740992.0)
            w = self.std * math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
            self.cache[j] = w
        return w


class RowSampler:
    """Draws rows of distinct feature ids (one-based, ascending)."""

    def __init__(self, dim, active, zipf, seed):
        self.dim = dim
        self.active = active
        # Inverse CDF of the density x^-s on [1, dim + 1), floored to a rank.
        self.log_top = math.log(dim + 1.0)
        self.e = 1.0 - zipf
        self.harmonic = abs(self.e) < 1e-9
        if not self.harmonic:
            self.span = (dim + 1.0) ** self.e - 1.0
            self.inv = 1.0 / self.e
        # The rank -> id bijection: a multiplier coprime to dim, and an offset.
        mix = random.Random(f"{seed}/scatter")
        mult = (mix.randrange(1, dim) | 1) if dim > 2 else 1
        while math.gcd(mult, dim) != 1:
            mult += 1
        self.mult = mult
        self.offset = mix.randrange(dim)

    def draw(self, rng, n):
        """A set of up to n feature ids from the power law (repeats merge).

        A rank of dim + 1 (possible only through float rounding as u -> 1)
        wraps to the id of rank 1 under the bijection: harmless.
        """
        dim, mult, offset, rand = self.dim, self.mult, self.offset, rng.random
        if self.harmonic:
            top, exp = self.log_top, math.exp
            return {((int(exp(rand() * top)) - 1) * mult + offset) % dim + 1 for _ in range(n)}
        span, inv = self.span, self.inv
        return {((int((1.0 + rand() * span) ** inv) - 1) * mult + offset) % dim + 1
                for _ in range(n)}

    def row(self, rng):
        k = max(1, min(self.dim, round(rng.gauss(self.active, math.sqrt(self.active)))))
        ids = self.draw(rng, k)
        while len(ids) < k:
            ids |= self.draw(rng, k - len(ids))
        return sorted(ids)


def sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def solve_bias(margins, rate):
    """The b with mean(sigmoid(b + m)) == rate (the mean is monotone in b)."""
    lo, hi = -50.0, 50.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if sum(sigmoid(mid + m) for m in margins) / len(margins) < rate:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def write_split(path, rows, sampler, model, bias, rng):
    """Writes `rows` examples; returns (positives, oracle log loss sum, ids seen)."""
    positives = 0
    loss = 0.0
    seen = set()
    cache = model.cache
    out = []
    with open(path, "w", encoding="ascii", newline="\n") as f:
        for i in range(rows):
            ids = sampler.row(rng)
            seen.update(ids)
            for j in ids:
                if j not in cache:
                    model.weight(j)
            p = sigmoid(bias + sum(map(cache.__getitem__, ids)))
            label = 1 if rng.random() < p else 0
            positives += label
            loss -= math.log(max(p if label else 1.0 - p, 1e-15))
            out.append(("1 " if label else "0 ") + ":1 ".join(map(str, ids)) + ":1")
            if len(out) == 4096 or i == rows - 1:
                out.append("")
                f.write("\n".join(out))
                out = []
    return positives, loss, seen


def main(argv):
    ap = argparse.ArgumentParser(
        description="CTR-like sparse LibSVM data with a planted logistic model (see module doc).")
    ap.add_argument("--train-rows", type=int, default=200000)
    ap.add_argument("--test-rows", type=int, default=50000)
    ap.add_argument("--dim", type=int, default=1000000)
    ap.add_argument("--active", type=int, default=20)
    ap.add_argument("--zipf", type=float, default=1.1)
    ap.add_argument("--weight-std", type=float, default=0.25)
    ap.add_argument("--positive-rate", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=".")
    ap.add_argument("--prefix", default="ctr")
    a = ap.parse_args(argv)

    problems = []
    if a.train_rows < 1 or a.test_rows < 0:
        problems.append("--train-rows must be >= 1 and --test-rows >= 0")
    if a.dim < 1:
        problems.append("--dim must be >= 1")
    if not 1 <= a.active <= a.dim:
        problems.append("--active must be in [1, --dim]")
    if a.zipf <= 0:
        problems.append("--zipf must be > 0")
    if a.weight_std < 0:
        problems.append("--weight-std must be >= 0")
    if not 0.0 < a.positive_rate < 1.0:
        problems.append("--positive-rate must be in (0, 1)")
    if problems:
        ap.error("; ".join(problems))

    start = time.time()
    os.makedirs(a.out, exist_ok=True)
    sampler = RowSampler(a.dim, a.active, a.zipf, a.seed)
    model = PlantedModel(a.seed, a.weight_std)

    # Calibrate the bias on a pilot sample from its own stream, so the
    # written rows do not depend on the pilot's size.
    pilot_rng = random.Random(f"{a.seed}/pilot")
    pilot = [sum(model.weight(j) for j in sampler.row(pilot_rng)) for _ in range(5000)]
    bias = solve_bias(pilot, a.positive_rate)

    stats = {}
    all_seen = set()
    for split, rows in (("train", a.train_rows), ("test", a.test_rows)):
        path = os.path.join(a.out, f"{a.prefix}.{split}.svm")
        pos, loss, seen = write_split(path, rows, sampler, model, bias,
                                      random.Random(f"{a.seed}/{split}"))
        all_seen |= seen
        stats[split] = {
            "path": path,
            "rows": rows,
            "positive_rate": pos / rows if rows else 0.0,
            "distinct_features": len(seen),
            "oracle_logloss": loss / rows if rows else 0.0,
        }
    meta = {
        "flags": vars(a),
        "bias": bias,
        "distinct_features": len(all_seen),
        "splits": stats,
        "seconds": round(time.time() - start, 2),
    }
    with open(os.path.join(a.out, f"{a.prefix}.meta.json"), "w", encoding="ascii") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    for split, s in stats.items():
        print(f"{s['path']}: {s['rows']} rows, positive rate {s['positive_rate']:.3f}, "
              f"{s['distinct_features']} distinct features, oracle log loss "
              f"{s['oracle_logloss']:.4f}", file=sys.stderr)
    print(f"bias {bias:.3f}, {meta['seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
