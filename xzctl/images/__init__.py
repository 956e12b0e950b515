"""The inference image catalog (inference_images/) and its lock."""

from xzctl.images.catalog import Catalog, CatalogImage, ImageRef, Release, default_catalog_dir, load_catalog
from xzctl.images.verify import Finding, VerifyReport, check_reference, verify_fleet

__all__ = [
    "Catalog",
    "CatalogImage",
    "Finding",
    "ImageRef",
    "Release",
    "VerifyReport",
    "check_reference",
    "default_catalog_dir",
    "load_catalog",
    "verify_fleet",
]
