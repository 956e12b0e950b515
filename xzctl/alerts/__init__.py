"""Alert rules, Alertmanager config and dashboards generated from the spec and the metrics contract."""
