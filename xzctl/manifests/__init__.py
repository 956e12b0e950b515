"""Kubernetes objects of an edge region and of the cloud, as plain data (one source for Pulumi and YAML)."""
