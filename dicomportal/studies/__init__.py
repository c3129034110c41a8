"""DICOM studies: storage backends (local disk, Orthanc), upload and ingest, quota, the library."""
