"""DICOM studies: reading series, rendering slices and 3D views, segmentation, the viewer's tools."""
