"""The static plan from the fleet spec alone: capacity, N+1, GPU budget, cost and ROI."""

from xzctl.plan.static import Plan, PlanRow, Verdict, build_plan

__all__ = ["Plan", "PlanRow", "Verdict", "build_plan"]
