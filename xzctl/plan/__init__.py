"""The static plan from the fleet spec alone: capacity, N+1, GPU budget, cost and ROI."""
