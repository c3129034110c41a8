"""Invoices and credit notes as printed: HTML -> PDF/A-3 (WeasyPrint) with Factur-X XML."""
