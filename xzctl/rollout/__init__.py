"""Node-by-node canary rollouts of inference images, gated on live metrics."""
