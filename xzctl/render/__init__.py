"""Jinja2 rendering of node configs and xiaozhi server overrides, with atomic output."""

from xzctl.render.node import NodeDocuments, region_documents, render_node_documents
from xzctl.render.output import write_tree

__all__ = ["NodeDocuments", "region_documents", "render_node_documents", "write_tree"]
