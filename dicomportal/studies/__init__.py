"""DICOM studies: reading series, rendering slices and 3D views, segmentation and the viewer's
tools; storage backends (local disk, Orthanc), upload and ingest, quota, the library."""
