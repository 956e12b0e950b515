"""Plan rows of the autoscaling budget: per region, GPU slots at every autoscaler's max and N+1 at peak."""

from __future__ import annotations

from xzctl.plan.static import PlanRow, Verdict
from xzctl.spec.autoscaling import (
    cloud_gpu_demand_at_max,
    node_gpu_demand_at_max,
    peak_shortfalls,
    scaler,
)
from xzctl.spec.models import Fleet


def autoscaling_rows(fleet: Fleet) -> list[PlanRow]:
    """One row per region with autoscalers; a cloud row when the LLM autoscalers may ask for more than replicas."""
    rows = []
    shortfalls = peak_shortfalls(fleet)
    for name, region in fleet.regions.items():
        nodes = [n for n in region.edge_nodes if any(scaler(s) for s in n.services.inference().values())]
        if not nodes:
            continue
        at_max = [(n.id, node_gpu_demand_at_max(n), n.capacity.gpu.slots) for n in nodes]
        over = [o for o in at_max if o[1] > o[2]]
        shorts = shortfalls[name]
        worst = max(demand / max(slots, 1) for _, demand, slots in at_max)
        if over:
            node, demand, slots = over[0]
            verdict, reason = Verdict.FAIL, f"{node}: services at max take {demand} GPU slots of {slots}"
        elif shorts:
            # Pods beyond the GPUs stay Pending (fail); a max too low for the moved load slows answers (warn).
            first = shorts[0]
            verdict = Verdict.WARN
            reason = f"not N+1 at peak: lose {first.lost}, {first.node}'s {first.reason}"
        else:
            verdict = Verdict.OK
            reason = f"at max the busiest node uses {worst:.0%} of its GPU slots; N+1 at peak holds"
        problems = len(over) + len(shorts)
        rows.append(
            PlanRow("autoscaling", name, "max within GPUs, N+1 at peak", problems, 0, "problems", verdict, reason)
        )
    cloud = fleet.cloud
    demand, gpus = cloud_gpu_demand_at_max(cloud), cloud.gpu_servers.gpus
    if demand > cloud.llm_gpu_demand:
        spare = gpus - cloud.gpu_servers.gpus_per_server
        if demand > gpus:
            verdict, reason = Verdict.FAIL, f"LLM models at max ask for {demand} GPUs > {gpus}"
        elif demand > spare:
            verdict, reason = Verdict.WARN, f"{demand} GPUs at max fit {gpus} but not {spare} after losing a server"
        else:
            verdict, reason = Verdict.OK, f"{demand} GPUs at max fit {spare} even after losing a server"
        rows.append(PlanRow("autoscaling", "cloud", "LLM GPUs at max", demand, gpus, "GPUs", verdict, reason))
    return rows
