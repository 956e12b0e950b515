"""The Pulumi program of xzctl: edge regions and the cloud cluster."""
