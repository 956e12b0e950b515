"""The inference image catalog (inference_images/) and its lock."""
