"""The forecast's backtest error beside the naive "same hour yesterday" baseline, on simulated history.

Goal: Holt-Winters beats the naive baseline in every region and seed, with a MAPE <= 10 % on the daily pattern.
The history is the simulator's (the sandbox's `--history`), hourly per region of the bundled example fleet,
14 days per seed; each of the last 3 days is forecast 24 h ahead from the hours before it.
Run: python benchmarks/forecast.py [--days 14] [--seeds 3]
"""

from __future__ import annotations

import argparse
import time

from xzctl.checks.forecast import SEASON_HOURS, backtest
from xzctl.simulator.daily import hourly_active_devices
from xzctl.spec import bundled_example_path, load_fleet

GOAL_MAPE = 0.10
END = 1_780_000_000 // 3600 * 3600


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    fleet = load_fleet(bundled_example_path()).fleet
    print(f"{'seed':>4} {'region':<10} {'Holt-Winters MAPE':>18} {'naive MAPE':>11} {'better':>7}")
    wins = rows = 0
    worst = 0.0
    started = time.perf_counter()
    for seed in range(args.seeds):
        history = hourly_active_devices(fleet, seed=seed, end=END, hours=args.days * SEASON_HOURS)
        for region, values in history.items():
            model, naive = backtest(values)
            rows += 1
            wins += model < naive
            worst = max(worst, model)
            print(f"{seed:>4} {region:<10} {model:>18.2%} {naive:>11.2%} {'yes' if model < naive else 'NO':>7}")
    elapsed = time.perf_counter() - started
    ok = wins == rows and worst <= GOAL_MAPE
    print(
        f"beats the naive baseline in {wins}/{rows}; worst MAPE {worst:.2%} (goal <= {GOAL_MAPE:.0%}); {elapsed:.1f} s"
    )
    print("goal met" if ok else "goal MISSED")


if __name__ == "__main__":
    main()
