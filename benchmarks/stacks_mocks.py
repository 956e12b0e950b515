"""Benchmark: the full stack program of the bundled example under Pulumi mocks.

Runs the program for every edge region and the cloud (what `xzctl provision` would register) and
prints the resource count and the time. Goal: the whole example in <= 2 s (imports excluded: they
are paid once per process and printed apart).

    python benchmarks/stacks_mocks.py
"""

from __future__ import annotations

import os
import time
from typing import Any

GOAL_SECONDS = 2.0


def main() -> None:
    started = time.perf_counter()
    import pulumi
    from pulumi.runtime import mocks

    from xzctl.provision.components import resource_class
    from xzctl.provision.program import program
    from xzctl.spec import bundled_example_path, load_fleet

    # pulumi_kubernetes loads one module per API group on first use (core/v1 alone takes ~1 s): timed here.
    for api in ("v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1"):
        resource_class(api, "Namespace")
    import pulumi_kubernetes.apiextensions
    import pulumi_kubernetes.helm.v3  # noqa: F401

    imported = time.perf_counter() - started
    counts: dict[str, int] = {}

    class Counting(pulumi.runtime.Mocks):
        target = ""
        echo = True  # return the inputs as state, as an engine does (the SDK then translates every output)

        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            counts[self.target] = counts.get(self.target, 0) + 1
            if args.typ == "pulumi:pulumi:StackReference":
                return args.name, {"name": args.name, "outputs": {"cloudEndpoint": "https://cloud.example/v1"}}
            return f"{args.name}-id", args.inputs if self.echo else {}

        def call(self, _args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
            return {}, []  # no result, no check failures (the SDK iterates them: not None)

    counting = Counting()
    pulumi.runtime.set_mocks(counting, project="xzctl", stack="bench", preview=False)
    os.environ.setdefault("XIAOZHI_AUTH_KEY", "benchmark-key")
    secrets = {"xzctl:redisPassword": "r", "xzctl:backupCredentials": "b", "xzctl:objectStoreRootPassword": "o"}
    fleet_path = bundled_example_path()
    fleet = load_fleet(fleet_path).fleet
    print(f"imports (pulumi, pulumi_kubernetes API groups, stacks): {imported:.2f} s (once per process)")
    for echo in (True, False):
        counting.echo = echo
        counts.clear()
        timings: dict[str, float] = {}
        for target in [*fleet.regions, "cloud"]:
            counting.target = target
            config = {"xzctl:fleet": str(fleet_path), "xzctl:region": target, **secrets}
            pulumi.runtime.set_all_config(config, list(secrets))
            t0 = time.perf_counter()
            mocks.test(program)()  # type: ignore[no-untyped-call]  # pulumi.runtime.mocks.test is unannotated
            timings[target] = time.perf_counter() - t0
        total = sum(timings.values())
        print("mocks return each resource's inputs as its state:" if echo else "mocks return no state:")
        for target, seconds in timings.items():
            print(f"  {target:<10} {counts[target]:4d} resources  {seconds:.3f} s")
        print(f"  total: {sum(counts.values())} resources in {total:.2f} s for {len(timings)} stacks")
        print(f"  goal: <= {GOAL_SECONDS:.1f} s -> {'met' if total <= GOAL_SECONDS else 'MISSED'}")


if __name__ == "__main__":
    main()
