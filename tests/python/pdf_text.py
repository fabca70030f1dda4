"""Prints the text of every page of a PDF, read by pypdf (an independent PDF reader), so
that tests/audit.rs can check the access report's PDF: it must open, and say what it says.
Exits non-zero if the file is not a PDF pypdf can read without repairing it (strict mode)."""
import sys

from pypdf import PdfReader

reader = PdfReader(sys.argv[1], strict=True)
print(f"PAGES {len(reader.pages)}")
for page in reader.pages:
    print(page.extract_text())
